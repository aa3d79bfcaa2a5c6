// Dashboard for the Confluence memory service.
//
// Plain DOM, no framework. The server is the source of truth: this file signs
// in, polls /api/v1/status once a second and renders what it says. Everything
// the server sends is rendered with textContent, never as HTML: page titles and
// passage text come from Confluence and are untrusted.
(() => {
  'use strict';

  const POLL_MS = 1000;
  const ASK_LIMIT = 5;
  const SESSION_ENDED = 'Your session has ended. Sign in again.';
  const MANAGER_ROLES = new Set(['admin', 'domain-owner']);

  // ---- State ---------------------------------------------------------------
  // `generation` changes on every sign-in and sign-out, so replies and poll
  // loops that belong to an earlier session can tell they are stale and stop.
  // `requestSeq`/`acceptedSeq` drop status replies older than one already
  // rendered (an action's refresh can overtake a poll that is in flight).
  const state = {
    who: null,
    canManage: false,
    generation: 0,
    pollTimer: 0,
    requestSeq: 0,
    acceptedSeq: 0,
    optionsSignature: '',
    offlineText: '',
    connections: new Map(),
    memories: new Map(),
  };

  // ---- DOM helpers ---------------------------------------------------------
  const $ = (selector, root = document) => root.querySelector(selector);

  function el(tag, className = '', text = '') {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function button(className, text, onClick) {
    const node = el('button', className, text);
    node.type = 'button';
    node.addEventListener('click', onClick);
    return node;
  }

  // Only touch the DOM when the text really changed: the table re-renders
  // every second and needless writes would disturb selection and screen readers.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // Error boxes are emptied rather than hidden; CSS collapses them when empty.
  function setError(box, text) {
    box.textContent = text;
  }

  function showMessage(text, kind = 'info') {
    const box = $('#message');
    box.dataset.kind = kind;
    box.textContent = text;
  }

  // Adds or removes the child matching `selector` so that it exists exactly
  // when `wanted`; returns it (or null). Existing children are kept as they are.
  function syncChild(parent, selector, wanted, create) {
    const existing = parent.querySelector(selector);
    if (wanted && !existing) {
      const node = create();
      parent.append(node);
      return node;
    }
    if (!wanted && existing) existing.remove();
    return wanted ? existing : null;
  }

  // Moves `node` to position `index` among `parent`'s children if it is not
  // there already (moving a node would drop focus inside it).
  function placeAt(parent, node, index) {
    const current = parent.children[index];
    if (current !== node) parent.insertBefore(node, current || null);
  }

  function childrenById(parent, key) {
    return new Map([...parent.children].map((child) => [child.dataset[key], child]));
  }

  // Ignores repeated submits/clicks while the same control's request runs.
  // The control is not disabled, because disabling a focused control drops
  // keyboard focus; aria-busy tells assistive technology and CSS instead.
  const pending = new WeakSet();
  async function whileBusy(element, task) {
    if (pending.has(element)) return;
    pending.add(element);
    element.setAttribute('aria-busy', 'true');
    try {
      await task();
    } finally {
      pending.delete(element);
      element.removeAttribute('aria-busy');
    }
  }

  // ---- Formatting ----------------------------------------------------------
  function formatTime(value) {
    if (value == null) return 'never';
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
  }

  // 3600 -> "1h", 900 -> "15m", 86400 -> "1d", 90 -> "90s".
  function formatEvery(seconds) {
    for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
      if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
    }
    return `${seconds}s`;
  }

  function accountText(connection) {
    return connection.email ? `${connection.site} (${connection.email})` : connection.site;
  }

  function spaceText(memory) {
    return memory.space_name ? `${memory.space_key} — ${memory.space_name}` : memory.space_key;
  }

  function autoStateText(auto) {
    if (!auto) return 'off';
    const text = `every ${formatEvery(auto.every_secs)}`;
    return auto.backing_off ? `${text} — backing off: ${auto.last_error ?? 'retrying'}` : text;
  }

  function rejectionText(rejection) {
    const key = rejection.space_key;
    const detail = rejection.error ?? '';
    if (rejection.kind === 'duplicate') {
      return `${key} is already ingested: use Sync on the existing memory instead. ${detail}`.trim();
    }
    return detail ? `${key}: ${detail}` : key;
  }

  // Passage links come from page data; only http(s) targets become links.
  function safeHref(url) {
    if (!url) return '';
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : '';
    } catch {
      return '';
    }
  }

  // ---- API -----------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, kind, message) {
      super(message);
      this.status = status;
      this.kind = kind;
    }
  }

  // Every write carries Content-Type: application/json, even without a body:
  // the server refuses cookie-authenticated writes without it (CSRF defence).
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) init.body = JSON.stringify(body);

    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'Could not reach the server.');
    }
    const data = await readJson(response);
    if (!response.ok) {
      const error = (data && data.error) || {};
      const fallback = `Request failed (${response.status} ${response.statusText}).`;
      throw new ApiError(response.status, error.kind ?? 'http', error.message || fallback);
    }
    return data;
  }

  async function readJson(response) {
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  // A 401 anywhere means the session cookie is gone or expired.
  function reportError(error, box) {
    if (error.status === 401) {
      endSession(SESSION_ENDED);
      return;
    }
    setError(box, error.message);
    if (box.id === 'message') box.dataset.kind = 'error';
  }

  const path = (...parts) => `/api/v1/${parts.map(encodeURIComponent).join('/')}`;

  // ---- Sign-in and session -------------------------------------------------
  async function boot() {
    $('#signin-form').addEventListener('submit', onSignIn);
    $('#signout').addEventListener('click', onSignOut);
    $('#ask-form').addEventListener('submit', onAsk);
    try {
      enterApp(await api('GET', '/api/v1/whoami'));
    } catch (error) {
      showSignIn(error.status === 401 ? '' : `Could not check your session: ${error.message}`);
    }
  }

  function onSignIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const input = form.elements.key;
    const errorBox = $('#signin-error');
    setError(errorBox, '');
    const key = input.value.trim();
    if (!key) {
      setError(errorBox, 'Enter your API key.');
      input.focus();
      return;
    }
    whileBusy(form, async () => {
      try {
        await api('POST', '/api/v1/session', { key });
        // The cookie now carries the session; the key has no business in the DOM.
        input.value = '';
        enterApp(await api('GET', '/api/v1/whoami'));
      } catch (error) {
        setError(errorBox, error.message);
        input.select();
      }
    });
  }

  async function onSignOut() {
    let reason = '';
    try {
      await api('DELETE', '/api/v1/session');
    } catch (error) {
      // 401: the session was already gone, which is what signing out wants.
      if (error.status !== 401) reason = `Sign-out may not have completed: ${error.message}`;
    }
    endSession(reason);
  }

  function showSignIn(reason) {
    $('#app-view').hidden = true;
    $('#signin-view').hidden = false;
    setError($('#signin-error'), reason);
    $('#signin-key').focus();
  }

  function enterApp(who) {
    state.generation += 1;
    state.who = who;
    state.canManage = MANAGER_ROLES.has(who.role);
    const whoami = $('#whoami');
    whoami.textContent = `${who.instance} · ${who.role}`;
    whoami.title = who.label ? `Key: ${who.label}` : '';
    if (state.canManage) mountManagerControls();

    $('#signin-view').hidden = true;
    $('#app-view').hidden = false;
    loadConnector(state.generation);
    pollStatus(state.generation);
  }

  // Forgets everything about the session, including rendered data, so the
  // next person to sign in on this page sees only what their own role allows.
  function endSession(reason) {
    state.generation += 1;
    clearTimeout(state.pollTimer);
    state.who = null;
    state.canManage = false;
    state.optionsSignature = '';
    state.offlineText = '';
    state.connections.clear();
    state.memories.clear();

    for (const slot of ['#connect-open-slot', '#connect-form-slot', '#memory-open-slot', '#memory-form-slot']) {
      $(slot).replaceChildren();
    }
    for (const list of ['#connections', '#memory-rows', '#passages']) $(list).replaceChildren();
    for (const hidden of ['#connections-empty', '#memory-empty', '#ask-empty']) $(hidden).hidden = true;
    $('#ask-form').reset();
    setError($('#ask-error'), '');
    showMessage('');
    $('#connector-name').textContent = '';
    $('#connector-source').textContent = '';
    $('#whoami').textContent = '';
    showSignIn(reason);
  }

  // ---- Manager controls (admin, domain-owner) ------------------------------
  // Cloned from <template>s only for managers: members never get these in the DOM.
  function mount(slot, template) {
    $(slot).replaceChildren($(template).content.cloneNode(true));
  }

  function mountManagerControls() {
    mount('#connect-open-slot', '#tpl-connect-open');
    mount('#connect-form-slot', '#tpl-connect-form');
    mount('#memory-open-slot', '#tpl-memory-open');
    mount('#memory-form-slot', '#tpl-memory-form');

    const connectForm = $('#connect-form');
    $('#connect-open').addEventListener('click', () => openForm(connectForm, '#connect-open'));
    $('.cancel', connectForm).addEventListener('click', () => closeForm(connectForm, '#connect-open'));
    connectForm.addEventListener('submit', onConnectSubmit);

    const memoryForm = $('#memory-form');
    $('#add-memory-open').addEventListener('click', () => openForm(memoryForm, '#add-memory-open'));
    $('.cancel', memoryForm).addEventListener('click', () => closeForm(memoryForm, '#add-memory-open'));
    memoryForm.addEventListener('submit', onMemorySubmit);
  }

  function openForm(form, openerSelector) {
    form.hidden = false;
    $(openerSelector).setAttribute('aria-expanded', 'true');
    $('input, select', form)?.focus();
  }

  // reset() also empties the token field: a secret must not linger in the page.
  function closeForm(form, openerSelector) {
    form.reset();
    form.hidden = true;
    for (const box of form.querySelectorAll('.form-error')) setError(box, '');
    const opener = $(openerSelector);
    opener.setAttribute('aria-expanded', 'false');
    opener.focus();
  }

  // ---- Connector card and Connect form -------------------------------------
  async function loadConnector(generation) {
    try {
      const connector = await api('GET', '/api/v1/connector');
      if (generation !== state.generation) return;
      $('#connector-name').textContent = connector.name;
      $('#connector-source').textContent = connector.source_label
        ? `One memory per ${connector.source_label}.`
        : '';
      if (state.canManage) renderConnectFields(connector.fields ?? []);
    } catch (error) {
      if (generation === state.generation) reportError(error, $('#message'));
    }
  }

  // The server describes its connector's fields; the form shows the required
  // ones in its order. The Connect button stays disabled until they exist.
  function renderConnectFields(fields) {
    const nodes = fields.filter((field) => field.required).map(connectField);
    if (state.who.allow_loopback) nodes.push(loopbackField());
    $('#connect-fields').replaceChildren(...nodes);
    $('#connect-open').disabled = false;
  }

  function connectField(field) {
    const id = `connect-${String(field.name).replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const wrap = el('div', 'field');
    const label = el('label', '', field.label || field.name);
    label.htmlFor = id;

    const input = el('input');
    input.id = id;
    input.name = field.name;
    input.type = field.secret ? 'password' : 'text';
    input.required = true;
    input.spellcheck = false;
    if (field.secret) input.autocomplete = 'off';
    wrap.append(label, input);

    if (field.help) {
      const hint = el('p', 'hint', field.help);
      hint.id = `${id}-hint`;
      input.setAttribute('aria-describedby', hint.id);
      wrap.append(hint);
    }
    return wrap;
  }

  function loopbackField() {
    const wrap = el('div', 'field checkbox');
    const label = el('label');
    const input = el('input');
    input.type = 'checkbox';
    input.name = 'allow_loopback';
    label.append(input, 'Allow loopback http site (testing)');
    wrap.append(label);
    return wrap;
  }

  function onConnectSubmit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorBox = $('#connect-error');
    setError(errorBox, '');
    const body = {};
    for (const input of form.querySelectorAll('#connect-fields input')) {
      body[input.name] = input.type === 'checkbox' ? input.checked : input.value.trim();
    }
    whileBusy(form, async () => {
      try {
        const connection = await api('POST', '/api/v1/connections', body);
        closeForm(form, '#connect-open');
        showMessage(`Connected ${accountText(connection)}.`);
        afterAction();
      } catch (error) {
        reportError(error, errorBox);
      }
    });
  }

  // ---- Connected accounts --------------------------------------------------
  function renderConnections(connections) {
    const list = $('#connections');
    const items = childrenById(list, 'connectionId');
    connections.forEach((connection, index) => {
      const item = items.get(connection.id) || createConnectionItem(connection);
      items.delete(connection.id);
      placeAt(list, item, index);
      updateConnectionItem(item, connection);
    });
    items.forEach((item) => item.remove());
    $('#connections-empty').hidden = connections.length > 0;
  }

  function createConnectionItem(connection) {
    const item = el('li', 'connection');
    item.dataset.connectionId = connection.id;
    const main = el('div', 'connection-main');
    main.append(el('span', 'site'), el('span', 'email'));
    const meta = el('div', 'connection-meta');
    meta.append(el('span', 'access'), el('span', 'state'));
    item.append(main, meta);
    return item;
  }

  function updateConnectionItem(item, connection) {
    setText($('.site', item), connection.site);
    const email = $('.email', item);
    setText(email, connection.email ?? '');
    email.hidden = !connection.email;
    setText($('.access', item), connection.access ?? '');
    const stateNode = $('.state', item);
    setText(stateNode, connection.connected ? 'connected' : 'disconnected');
    stateNode.dataset.state = connection.connected ? 'connected' : 'disconnected';

    syncChild(item, '.disconnect', state.canManage && connection.connected, () => {
      const disconnect = button('disconnect', 'Disconnect', onDisconnect);
      disconnect.setAttribute('aria-label', `Disconnect ${accountText(connection)}`);
      return disconnect;
    });
  }

  function onDisconnect(event) {
    const control = event.currentTarget;
    const id = control.closest('li').dataset.connectionId;
    whileBusy(control, async () => {
      try {
        const connection = await api('DELETE', path('connections', id));
        showMessage(
          `Disconnected ${accountText(connection)}. Its memories stay searchable; ` +
            'Sync is refused until the account is connected again.',
        );
        afterAction();
      } catch (error) {
        reportError(error, $('#message'));
      }
    });
  }

  // The select is rebuilt only when the set of connected accounts changes, so
  // a poll never resets the user's choice or closes an open dropdown.
  function renderConnectionOptions(connections) {
    const select = $('#memory-connection');
    if (!select) return;
    const options = connections
      .filter((connection) => connection.connected)
      .map((connection) => [connection.id, accountText(connection)]);
    const signature = JSON.stringify(options);
    if (signature === state.optionsSignature) return;
    state.optionsSignature = signature;

    const previous = select.value;
    if (options.length === 0) {
      select.replaceChildren(new Option('No connected account: connect Confluence first', ''));
    } else {
      select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
    }
    if (options.some(([value]) => value === previous)) select.value = previous;
  }

  // ---- Add Confluence Memory -----------------------------------------------
  function onMemorySubmit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorBox = $('#memory-error');
    setError(errorBox, '');
    const body = {
      connection: form.elements.connection.value,
      spaces: form.elements.spaces.value.trim(),
    };
    whileBusy(form, async () => {
      try {
        const result = await api('POST', '/api/v1/memories', body);
        const accepted = result?.memories ?? [];
        const rejected = result?.rejected ?? [];
        if (accepted.length > 0) {
          showMessage(`Ingest started for ${accepted.map((memory) => memory.space_key).join(', ')}.`);
        }
        // With rejections the form stays open so they can be read and fixed.
        if (rejected.length > 0) {
          errorBox.replaceChildren(...rejected.map((rejection) => el('p', '', rejectionText(rejection))));
        } else {
          closeForm(form, '#add-memory-open');
        }
        afterAction();
      } catch (error) {
        reportError(error, errorBox);
      }
    });
  }

  // ---- Memory table --------------------------------------------------------
  // Rows are keyed by memory id and updated in place: a row is only created for
  // a new id, so a half-typed interval in .auto-every survives every poll.
  const COLUMNS = ['space', 'account', 'status', 'pages', 'chunks', 'synced', 'actions'];

  function renderMemories(memories) {
    const body = $('#memory-rows');
    const rows = childrenById(body, 'memoryId');
    memories.forEach((memory, index) => {
      const row = rows.get(memory.id) || createMemoryRow(memory);
      rows.delete(memory.id);
      placeAt(body, row, index);
      updateMemoryRow(row, memory);
    });
    rows.forEach((row) => row.remove());
    $('#memory-empty').hidden = memories.length > 0;
  }

  function createMemoryRow(memory) {
    const row = el('tr');
    row.dataset.memoryId = memory.id;
    row.append(...COLUMNS.map((name) => el('td', name)));
    cell(row, 'pages').classList.add('num');
    cell(row, 'chunks').classList.add('num');
    cell(row, 'status').append(el('span', 'status-value'));
    fillActions(cell(row, 'actions'), memory);
    return row;
  }

  function cell(row, name) {
    return row.cells[COLUMNS.indexOf(name)];
  }

  function fillActions(actions, memory) {
    const auto = el('div', 'auto');
    auto.append(el('span', 'auto-label', 'Auto Resync:'), ' ', el('span', 'auto-state'));
    if (state.canManage) {
      const sync = button('sync', 'Sync', onSync);
      sync.setAttribute('aria-label', `Sync ${memory.space_key}`);
      actions.append(sync);

      // No room for a visible label per row: the accessible name says what it is.
      const every = el('input', 'auto-every');
      every.type = 'text';
      every.size = 4;
      every.defaultValue = '1h';
      every.autocomplete = 'off';
      every.spellcheck = false;
      every.setAttribute('aria-label', `Auto Resync interval for ${memory.space_key}`);
      auto.append(every, button('auto-toggle', 'Auto Resync on', onAutoToggle));
    }
    actions.append(auto, el('p', 'row-error form-error'));
  }

  function updateMemoryRow(row, memory) {
    const connection = state.connections.get(memory.connection);
    setText(cell(row, 'space'), spaceText(memory));
    setText(cell(row, 'account'), connection ? accountText(connection) : memory.connection);
    updateStatusCell(cell(row, 'status'), memory);
    setText(cell(row, 'pages'), String(memory.pages ?? 0));
    setText(cell(row, 'chunks'), String(memory.chunks ?? 0));
    setText(cell(row, 'synced'), formatTime(memory.synced_at));
    updateAutoResync(row, memory);
  }

  function updateStatusCell(statusCell, memory) {
    const value = $('.status-value', statusCell);
    setText(value, memory.status);
    value.dataset.status = memory.status;

    const error = syncChild(statusCell, '.error', memory.status === 'ERROR', () => el('span', 'error'));
    if (error) setText(error, memory.error ?? '');

    const progress = syncChild(statusCell, '.progress-line', memory.status === 'IN_PROGRESS', () => {
      const line = el('div', 'progress-line');
      const bar = el('progress');
      bar.setAttribute('aria-label', `Progress for ${memory.space_key}`);
      line.append(bar, el('span', 'phase'));
      return line;
    });
    if (progress) updateProgress(progress, memory.progress ?? {});

    const semantic = memory.semantic;
    const meaning = syncChild(statusCell, '.semantic-line', Boolean(semantic), () => el('div', 'semantic-line'));
    if (meaning) setText(meaning, semanticText(semantic));
  }

  // Semantic retrieval is on for the instance: how far its pages are embedded.
  function semanticText(semantic) {
    if (semantic.error) return `Search by meaning unavailable: ${semantic.error}`;
    if (semantic.embedded < semantic.pages) {
      return `Search by meaning: ${semantic.embedded}/${semantic.pages} pages embedded`;
    }
    return `Search by meaning: all ${semantic.pages} pages embedded`;
  }

  // Without a known total the bar has no value attribute, which renders it
  // indeterminate.
  function updateProgress(line, progress) {
    const done = Number(progress.done) || 0;
    const known = Number(progress.known) || 0;
    const bar = $('progress', line);
    if (known > 0) {
      bar.max = known;
      bar.value = done;
    } else {
      bar.removeAttribute('value');
    }
    setText($('.phase', line), `${progress.phase || 'starting'} ${done}/${known}`);
  }

  function updateAutoResync(row, memory) {
    const auto = memory.auto_resync;
    const stateNode = $('.auto-state', row);
    setText(stateNode, autoStateText(auto));
    stateNode.classList.toggle('backing-off', Boolean(auto?.backing_off));
    stateNode.title = auto?.next_run ? `Next run ${formatTime(auto.next_run * 1000)}` : '';

    const toggle = $('.auto-toggle', row);
    if (toggle) {
      const text = auto ? 'Auto Resync off' : 'Auto Resync on';
      setText(toggle, text);
      toggle.setAttribute('aria-label', `${text} for ${memory.space_key}`);
    }
  }

  // ---- Row actions: Sync and Auto Resync -----------------------------------
  function onSync(event) {
    const control = event.currentTarget;
    const id = control.closest('tr').dataset.memoryId;
    rowAction(control, () => api('POST', path('memories', id, 'sync'), {}), (memory) =>
      `Sync started for ${memory.space_key}.`,
    );
  }

  function onAutoToggle(event) {
    const control = event.currentTarget;
    const row = control.closest('tr');
    const isOn = Boolean(state.memories.get(row.dataset.memoryId)?.auto_resync);
    const every = $('.auto-every', row).value.trim();
    if (!isOn && !every) {
      setError($('.row-error', row), 'Enter an interval such as 1h or 15m.');
      return;
    }
    const body = isOn ? { off: true } : { every };
    const url = path('memories', row.dataset.memoryId, 'auto-resync');
    rowAction(control, () => api('PUT', url, body), (memory) =>
      memory.auto_resync
        ? `Auto Resync on for ${memory.space_key}: ${autoStateText(memory.auto_resync)}.`
        : `Auto Resync off for ${memory.space_key}.`,
    );
  }

  // Runs a memory action. A failure is shown in the row (next to the control)
  // and in #message (announced to screen readers); success updates the row
  // from the reply at once, then refreshes everything.
  function rowAction(control, request, describe) {
    const row = control.closest('tr');
    const rowError = $('.row-error', row);
    setError(rowError, '');
    whileBusy(control, async () => {
      try {
        const memory = await request();
        showMessage(describe(memory));
        afterAction();
        if (memory?.id && row.isConnected) {
          state.memories.set(memory.id, memory);
          updateMemoryRow(row, memory);
        }
      } catch (error) {
        if (error.status === 401) {
          endSession(SESSION_ENDED);
          return;
        }
        const memory = state.memories.get(row.dataset.memoryId);
        setError(rowError, error.message);
        showMessage(`${memory ? memory.space_key : row.dataset.memoryId}: ${error.message}`, 'error');
      }
    });
  }

  // ---- Status polling ------------------------------------------------------
  // One request at a time: the next poll is scheduled when the previous ends.
  async function pollStatus(generation) {
    await refreshStatus(generation);
    if (generation === state.generation) {
      state.pollTimer = setTimeout(() => pollStatus(generation), POLL_MS);
    }
  }

  async function refreshStatus(generation) {
    const seq = ++state.requestSeq;
    let status;
    try {
      status = await api('GET', '/api/v1/status');
    } catch (error) {
      if (generation !== state.generation) return;
      if (error.status === 401) endSession(SESSION_ENDED);
      else noteStatusFailure(error.message);
      return;
    }
    if (generation !== state.generation || seq < state.acceptedSeq) return;
    state.acceptedSeq = seq;
    noteStatusRecovered();
    renderStatus(status);
  }

  // After a successful action: ignore status replies already in flight (they
  // predate the action) and fetch a fresh one now rather than within a second.
  function afterAction() {
    state.acceptedSeq = ++state.requestSeq;
    refreshStatus(state.generation);
  }

  function noteStatusFailure(reason) {
    if (state.offlineText) return;
    state.offlineText = `Live updates paused: ${reason} Retrying…`;
    showMessage(state.offlineText, 'error');
  }

  function noteStatusRecovered() {
    if (!state.offlineText) return;
    if ($('#message').textContent === state.offlineText) showMessage('');
    state.offlineText = '';
  }

  function renderStatus(status) {
    const connections = status?.connections ?? [];
    const memories = status?.memories ?? [];
    state.connections = new Map(connections.map((connection) => [connection.id, connection]));
    state.memories = new Map(memories.map((memory) => [memory.id, memory]));
    renderConnections(connections);
    renderConnectionOptions(connections);
    renderMemories(memories);
  }

  // ---- Ask -----------------------------------------------------------------
  function onAsk(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorBox = $('#ask-error');
    setError(errorBox, '');
    const question = form.elements.question.value.trim();
    if (!question) {
      setError(errorBox, 'Type a question first.');
      return;
    }
    const generation = state.generation;
    whileBusy(form, async () => {
      try {
        const result = await api('POST', '/api/v1/ask', { question, limit: ASK_LIMIT });
        if (generation === state.generation) renderPassages(result?.passages ?? []);
      } catch (error) {
        reportError(error, errorBox);
      }
    });
  }

  function renderPassages(passages) {
    $('#passages').replaceChildren(...passages.map(passageItem));
    $('#ask-empty').hidden = passages.length > 0;
  }

  function passageItem(passage) {
    const item = el('li', 'passage');
    const title = el('a', 'title', passage.title || passage.url || 'Untitled page');
    const href = safeHref(passage.url);
    if (href) {
      title.href = href;
      title.target = '_blank';
      title.rel = 'noopener';
    }
    const breadcrumb = Array.isArray(passage.breadcrumb)
      ? passage.breadcrumb.join(' › ')
      : passage.breadcrumb ?? '';
    item.append(
      title,
      el('div', 'breadcrumb', breadcrumb),
      el('div', 'text', passage.text ?? ''),
      el('div', 'meta', passageMeta(passage)),
    );
    return item;
  }

  function passageMeta(passage) {
    const parts = [];
    if (passage.space_key) parts.push(passage.space_key);
    if (typeof passage.score === 'number') parts.push(`score ${passage.score.toFixed(3)}`);
    return parts.join(' · ');
  }

  boot();
})();
