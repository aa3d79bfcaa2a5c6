//! Confluence *storage format* → structured clean text.
//!
//! Storage format is XML-ish rather than XHTML: a body is a fragment with several roots,
//! undeclared `ac:` / `ri:` / `at:` prefixes, HTML named entities that XML does not know
//! (`&nbsp;`, `&mdash;`, `&auml;` …), numeric entities and CDATA sections. [`convert`] turns such a
//! body into a list of [`Block`]s — headings (which drive section-aware chunking, see
//! [`crate::chunk`]) and text blocks (paragraphs, whole lists, whole tables, code blocks …).
//!
//! The converter never fails and never panics: malformed markup (unclosed or mismatched tags,
//! stray `<` / `&`, unknown entities, broken CDATA/comments) degrades to text instead of losing the
//! rest of the page. It works in linear time with an explicit stack, so pathological nesting depth
//! cannot overflow the call stack.
//!
//! Extraction policy (see `confluence-api.md` §8.2):
//! * headings → [`Block::Heading`]; paragraphs, quotes, layout cells → [`Block::Text`]; a
//!   layout column that opened headings ends their sections ([`Block::SectionEnd`]), so they
//!   do not label the next column;
//! * lists → one line per item, `- ` / `1. ` markers, two spaces of indentation per level;
//!   task lists → `[ ] body` / `[x] body`;
//! * tables → one line per row, cells joined by ` | ` (header row kept, cell blocks flattened);
//! * `code` / `noformat` macros and `<pre>` → fenced blocks (language after the fence, title
//!   on the line before), newlines kept;
//! * `info` / `note` / `warning` / `tip` / `panel` → their title on a line (after a heading the
//!   body opens with, so the title stays with its text) then the body; the panel's kind is
//!   an icon on the page, not a word, so it is not written;
//!   `expand` → title line then body; `excerpt` and unknown macros → their body (a plain-text
//!   body as code with the macro's `title` and `language`; without a body, its `body`
//!   parameter, where math macros keep the formula);
//! * links → body text, else page / blog-post title, else attachment file name; a mention of
//!   a person → a mark [`Converted::name_mentions`] turns into `@` and their display name;
//!   `<a href>` → its text (its URL only when it has none);
//! * images → caption, else `ac:alt`, else `ac:title` (never the file name); emoticons → their
//!   `ac:emoji-fallback`, else the emoji their id spells, else the character of their classic
//!   name (`tick` → ✔); `status` → its title; `jira` → its issue key; `<time>` → its date as the page shows it (`31 Jan 2024`);
//! * ADF extensions → `ac:adf-fallback` (the ADF node text only if no fallback rendered);
//! * `include` / `excerpt-include` → an [`Inclusion`] where the other page's text (or its
//!   excerpt) goes, for the caller to fetch and [`Converted::splice`] in; each `excerpt` macro's
//!   blocks are remembered ([`Converted::excerpt`]) for the pages that include it;
//! * dropped: generated macros (`toc`, `children`, `pagetree`, …), other macro parameters, task
//!   ids / uuids / status words, placeholders, comments, `<script>` / `<style>`.
//!
//! ```
//! use confluence_connector::storage::convert;
//! let doc = convert("<h2>Install</h2><p>Run&nbsp;<code>make</code>.</p>");
//! assert_eq!(doc.plain_text(), "Install\n\nRun make.");
//! ```

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The result of [`convert`]: the page as an ordered list of blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Headings, text blocks and section ends in document order; never contains an empty
    /// heading or text block.
    pub blocks: Vec<Block>,
    /// Where other pages' content goes (`include`, `excerpt-include`), in document order.
    pub inclusions: Vec<Inclusion>,
    /// The page's `excerpt` macros, in document order.
    pub excerpts: Vec<Excerpt>,
}

/// An `include` or `excerpt-include` macro: the page shows another page's content (or its
/// excerpt) here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// The index in [`Converted::blocks`] the included blocks go before.
    pub at: usize,
    /// The included page.
    pub target: PageRef,
    /// `Some(name)`: only the included page's excerpt of that name (`""`: its first one);
    /// `None`: its whole content.
    pub excerpt: Option<String>,
}

/// A page or blog post named by title, as storage format links name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageRef {
    /// Its space's key; `None`: the space of the page that names it.
    pub space_key: Option<String>,
    /// Its title.
    pub title: String,
    /// Whether it is a blog post.
    pub blog_post: bool,
}

/// An `excerpt` macro: blocks that other pages can show with `excerpt-include`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// Its name (`""` when it has none).
    pub name: String,
    /// Its blocks: `blocks[start..end]`.
    pub start: usize,
    /// See [`Excerpt::start`].
    pub end: usize,
    /// Its text, when it sits in a list item or a table cell: their text becomes a block
    /// only when the list or table ends, so the excerpt has no blocks of its own.
    pub inline: Option<String>,
}

/// One structural unit of a converted page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A heading (`<h1>`…`<h6>`); `level` is 1–6, `text` is non-empty single-line text.
    Heading {
        /// Heading level, 1 (`<h1>`) to 6 (`<h6>`).
        level: u8,
        /// The heading text, whitespace-collapsed.
        text: String,
    },
    /// A paragraph-level block: a paragraph, a whole list, a whole table, a fenced code block,
    /// … Lines inside the block are separated by `\n`; the text is never empty.
    Text(String),
    /// The sections of the headings of `level` and deeper end here: what follows belongs to
    /// the headings above them. A layout column ends the headings it opened, so that they
    /// do not label the next column.
    SectionEnd {
        /// The level of the outermost heading that ends.
        level: u8,
    },
}

impl Block {
    /// The text of the block, whatever its kind.
    pub fn text(&self) -> &str {
        match self {
            Block::Heading { text, .. } => text,
            Block::Text(text) => text,
            Block::SectionEnd { .. } => "",
        }
    }
}

/// A piece of converted text: plain, or a mention's account id.
enum Piece<'a> {
    Text(&'a str),
    Mention(&'a str),
}

/// The pieces of a converted text, in order (text after an unclosed mark is plain).
struct MentionSplit<'a>(&'a str);

impl<'a> Iterator for MentionSplit<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let rest = self.0;
        if rest.is_empty() {
            return None;
        }
        match rest.find(MENTION_START) {
            Some(0) => {
                let after = &rest[MENTION_START.len_utf8()..];
                let Some(end) = after.find(MENTION_END) else {
                    self.0 = "";
                    return Some(Piece::Text(after));
                };
                self.0 = &after[end + MENTION_END.len_utf8()..];
                Some(Piece::Mention(&after[..end]))
            }
            Some(start) => {
                self.0 = &rest[start..];
                Some(Piece::Text(&rest[..start]))
            }
            None => {
                self.0 = "";
                Some(Piece::Text(rest))
            }
        }
    }
}

/// Starts a mention of an account in converted text: `MENTION_START` account id
/// `MENTION_END` (Unicode private-use characters, which Confluence text does not carry:
/// the converter drops them from page text). [`Converted::name_mentions`] turns each into
/// `@` and the account's display name.
const MENTION_START: char = '\u{E000}';
/// Ends a mention (see [`MENTION_START`]).
const MENTION_END: char = '\u{E001}';

impl Converted {
    /// The account ids of the people the page mentions, each once, in order of first mention.
    pub fn mentions(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for block in &self.blocks {
            for piece in MentionSplit(block.text()) {
                if let Piece::Mention(id) = piece
                    && !ids.iter().any(|known| known == id)
                {
                    ids.push(id.to_owned());
                }
            }
        }
        ids
    }

    /// Writes every mention as `@` and the name `names` gives its account (`@user` when it
    /// gives none), as the page shows it.
    pub fn name_mentions(&mut self, names: &HashMap<String, String>) {
        for block in &mut self.blocks {
            let text = match block {
                Block::Heading { text, .. } | Block::Text(text) => text,
                Block::SectionEnd { .. } => continue,
            };
            if !text.contains(MENTION_START) {
                continue;
            }
            let mut named = String::with_capacity(text.len());
            for piece in MentionSplit(text) {
                match piece {
                    Piece::Text(plain) => named.push_str(plain),
                    Piece::Mention(id) => {
                        named.push('@');
                        named.push_str(names.get(id).map(String::as_str).filter(|n| !n.is_empty()).unwrap_or("user"));
                    }
                }
            }
            *text = named;
        }
    }

    /// The excerpt other pages show with `excerpt-include`: the one called `name` (for
    /// `""`, the first one), with the inclusions inside it (an excerpt in a list item or a
    /// table cell is its text alone); `None` when the page has none.
    pub fn excerpt(&self, name: &str) -> Option<Converted> {
        let name = name.trim();
        let excerpt = self
            .excerpts
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .or_else(|| self.excerpts.first().filter(|_| name.is_empty()))?;
        if let Some(text) = &excerpt.inline {
            return Some(Converted { blocks: vec![Block::Text(text.clone())], ..Converted::default() });
        }
        let (start, end) = (excerpt.start.min(self.blocks.len()), excerpt.end.min(self.blocks.len()));
        let blocks = self.blocks[start..end.max(start)].to_vec();
        let inclusions = self
            .inclusions
            .iter()
            .filter(|i| i.at >= start && i.at <= end)
            .map(|i| Inclusion { at: i.at - start, ..i.clone() })
            .collect();
        Some(Converted { blocks, inclusions, excerpts: Vec::new() })
    }

    /// Puts other pages' content where the page includes it: `content` answers each
    /// [`Inclusion`] with the blocks to show (already resolved), or `None` to show nothing
    /// (a page that cannot be read, a cycle). Headings of included content end where the
    /// inclusion ends, so that they do not label what the page says after it. Excerpt
    /// positions are dropped: they pointed into the blocks before the splice.
    pub fn splice(&mut self, mut content: impl FnMut(&Inclusion) -> Option<Converted>) {
        let inclusions = std::mem::take(&mut self.inclusions);
        self.excerpts.clear();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let mut rest = std::mem::take(&mut self.blocks).into_iter().enumerate().peekable();
        for inclusion in &inclusions {
            while let Some((_, block)) = rest.next_if(|(n, _)| *n < inclusion.at) {
                blocks.push(block);
            }
            let Some(included) = content(inclusion) else { continue };
            let opened = included
                .blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Heading { level, .. } => Some(*level),
                    _ => None,
                })
                .min();
            blocks.extend(included.blocks);
            if let Some(level) = opened {
                blocks.push(Block::SectionEnd { level });
            }
        }
        blocks.extend(rest.map(|(_, block)| block));
        self.blocks = blocks;
    }

    /// All blocks (headings included, as plain lines) joined by blank lines.
    pub fn plain_text(&self) -> String {
        let len: usize = self.blocks.iter().map(|b| b.text().len() + 2).sum();
        let mut out = String::with_capacity(len);
        for block in self.blocks.iter().filter(|b| !b.text().is_empty()) {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(block.text());
        }
        out
    }
}

/// Converts a Confluence storage-format body into structured text. Never fails, never panics;
/// see the [module documentation](self) for what is kept and what is dropped.
pub fn convert(storage: &str) -> Converted {
    // The mention marks are the converter's own: a page cannot spell them.
    let cleaned;
    let storage = if storage.contains([MENTION_START, MENTION_END]) {
        cleaned = storage.replace([MENTION_START, MENTION_END], "");
        cleaned.as_str()
    } else {
        storage
    };
    let mut conv = Converter::new(storage);
    conv.run();
    conv.finish()
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Maximum nesting of capturing elements (parameters, `<a>`, `<pre>` …); deeper ones become
/// transparent so that nested captures can never cost quadratic copying.
const MAX_CAPTURE_DEPTH: usize = 32;
/// List indentation stops growing after this many levels (keeps output linear in input size).
const MAX_INDENT_LEVELS: usize = 12;
/// Longest entity name we try to resolve (`&CounterClockwiseContourIntegral;` is 31).
const MAX_ENTITY_NAME: usize = 32;

/// Macros whose content is generated at render time: emit nothing.
const GENERATED_MACROS: &[&str] = &[
    "toc",
    "children",
    "pagetree",
    "pagetreesearch",
    "recently-updated",
    "recently-updated-dashboard",
    "blog-posts",
    "contentbylabel",
    "content-by-label",
    "livesearch",
    "attachments",
    "create-from-template",
    "anchor",
    "listlabels",
    "popular-labels",
    "related-labels",
    "contributors",
    "contributors-summary",
    "page-index",
    "index",
    "recently-used-labels",
    "space-details",
    "spaces",
    "tasks-report-macro",
    "detailssummary",
];

// ---------------------------------------------------------------------------------------------
// Output builder
// ---------------------------------------------------------------------------------------------

/// Builds blocks line by line with whitespace collapsing.
#[derive(Default)]
struct Out {
    blocks: Vec<Block>,
    /// Current block: finished lines separated by `\n`, then the current line.
    buf: String,
    /// Byte offset in `buf` where the current line starts (after any label).
    line_start: usize,
    /// The current line has been started (prefix written).
    line_started: bool,
    /// The current line has visible content.
    line_has_text: bool,
    /// A collapsed whitespace run is waiting to be written before the next visible char.
    pending_space: bool,
    /// Written at the start of the next line (list marker / indentation).
    pending_prefix: String,
    /// Panel/expand label written as a line before the next content; `bool` = keep it even
    /// when no content follows.
    pending_label: Option<(String, bool)>,
    /// Level of the heading being collected in `buf`.
    heading: Option<u8>,
}

impl Out {
    fn start_line(&mut self) {
        if self.heading.is_none()
            && let Some((label, _)) = self.pending_label.take()
        {
            self.buf.push_str(&label);
            self.buf.push('\n');
        }
        self.line_start = self.buf.len();
        self.buf.push_str(&self.pending_prefix);
        self.pending_prefix.clear();
        self.line_started = true;
    }

    /// Appends text, collapsing whitespace runs to one space and dropping control characters.
    /// Returns whether any visible character was written.
    fn text(&mut self, s: &str) -> bool {
        let mut wrote = false;
        for (i, piece) in s.split(char::is_whitespace).enumerate() {
            if i > 0 && self.line_has_text {
                self.pending_space = true;
            }
            if piece.is_empty() {
                continue;
            }
            if piece.chars().any(char::is_control) {
                for ch in piece.chars().filter(|c| !c.is_control()) {
                    self.push_visible(ch.encode_utf8(&mut [0u8; 4]));
                    wrote = true;
                }
            } else {
                self.push_visible(piece);
                wrote = true;
            }
        }
        wrote
    }

    /// Writes non-whitespace text, preceded by a pending space / line start.
    fn push_visible(&mut self, piece: &str) {
        if !self.line_started {
            self.start_line();
        }
        if self.pending_space {
            self.buf.push(' ');
            self.pending_space = false;
        }
        self.buf.push_str(piece);
        self.line_has_text = true;
    }

    /// Appends `s` verbatim (no collapsing) to the current line.
    fn raw(&mut self, s: &str) {
        if !self.line_started {
            self.start_line();
        }
        self.buf.push_str(s);
        self.line_has_text = true;
        self.pending_space = false;
    }

    /// A whitespace-equivalent break (e.g. between table cells or paragraphs in a list item).
    fn soft(&mut self) {
        if self.line_has_text {
            self.pending_space = true;
        }
    }

    fn line_break(&mut self) {
        if self.line_started {
            if self.line_has_text {
                self.buf.push('\n');
            } else {
                self.buf.truncate(self.line_start);
            }
        }
        self.line_started = false;
        self.line_has_text = false;
        self.pending_space = false;
    }

    /// Drops everything written since `pos` (which must be a line start) and resets the line.
    fn truncate_to(&mut self, pos: usize) {
        if pos <= self.buf.len() {
            self.buf.truncate(pos);
        }
        self.line_started = false;
        self.line_has_text = false;
        self.pending_space = false;
    }

    /// Ends the current block.
    fn flush(&mut self) {
        self.line_started = false;
        self.line_has_text = false;
        self.pending_space = false;
        self.pending_prefix.clear();
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let trimmed = buf.trim_end().trim_start_matches('\n');
        if trimmed.is_empty() {
            return;
        }
        let text = if trimmed.len() == buf.len() { buf } else { trimmed.to_owned() };
        self.blocks.push(Block::Text(text));
    }

    fn push_text_block(&mut self, s: &str) {
        let t = s.trim();
        if !t.is_empty() {
            self.blocks.push(Block::Text(t.to_owned()));
        }
    }

    /// Turns a pending label into its own block (if worth keeping).
    fn drop_or_emit_label(&mut self) {
        if let Some((label, keep)) = self.pending_label.take()
            && keep
        {
            self.flush();
            self.push_text_block(&label);
        }
    }

    fn set_label(&mut self, label: String, keep: bool) {
        if let Some((old, _)) = self.pending_label.take() {
            // A label whose body started with another labelled container: keep it.
            self.flush();
            self.push_text_block(&old);
        }
        self.pending_label = Some((label, keep));
    }

    fn finish_heading(&mut self, level: u8) {
        self.heading = None;
        self.line_started = false;
        self.line_has_text = false;
        self.pending_space = false;
        let buf = std::mem::take(&mut self.buf);
        let text = collapse_ws(&buf);
        if !text.is_empty() {
            self.blocks.push(Block::Heading { level, text });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Element stack
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Transparent wrapper (span, strong, unknown elements …).
    Inline,
    /// Container block (div, blockquote …): breaks before and after.
    Block,
    /// A layout column: a block that ends the sections of the headings inside it.
    LayoutCell,
    /// Paragraph-like block (p, dt, dd …): breaks before and after.
    Para,
    /// Dropped subtree.
    Skip,
    Heading(u8),
    List,
    Item,
    Task,
    TaskBody,
    TaskStatus,
    Table,
    Row,
    Cell,
    Pre,
    Anchor,
    Macro,
    MacroBody,
    PlainBody,
    Param,
    Ref,
    Adf,
    AdfNode {
        captured: bool,
    },
    AdfFallback,
}

struct Frame {
    /// Interned element name (see `Converter::names`).
    name: u32,
    kind: Kind,
}

#[derive(Clone, Copy)]
struct ListState {
    ordered: bool,
    next: u32,
}

struct RowState {
    active: bool,
    buf_start: usize,
    mark: u64,
    cells: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MacroKind {
    Generic,
    Code,
    Noformat,
    Panel,
    Expand,
    Status,
    Jira,
    /// `include` (`excerpt: false`) or `excerpt-include`.
    Include {
        excerpt: bool,
    },
    /// `excerpt`: its blocks start at `start`; inside a list item or a table cell, its
    /// text starts at byte `inline_start` of the block being written.
    Excerpt {
        start: usize,
        inline_start: Option<usize>,
    },
}

struct MacroState {
    kind: MacroKind,
    params: Vec<(String, String)>,
    code: Option<String>,
    label_set: bool,
    /// The page an `include` / `excerpt-include` links to.
    target: Option<PageRef>,
}

impl MacroState {
    fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).unwrap_or("")
    }

    /// A named parameter, else the unnamed (default) parameter of the legacy `ac:macro` form.
    fn param_or_default(&self, name: &str) -> &str {
        match self.param(name) {
            "" => self.param(""),
            v => v,
        }
    }

    /// The label line of a panel / expand (its title), and whether to keep it when the body
    /// is empty.
    fn label(&self) -> Option<(String, bool)> {
        let title = collapse_ws(self.param("title"));
        match self.kind {
            MacroKind::Panel | MacroKind::Expand if !title.is_empty() => Some((title, true)),
            _ => None,
        }
    }
}

struct RefState {
    image: bool,
    block: bool,
    mark: u64,
    fallback: Option<String>,
    alt: String,
    title: String,
    anchor: String,
}

struct AdfState {
    node_depth: u32,
    fallback_mark: Option<u64>,
    fallback_used: bool,
    alt: String,
}

struct Capture {
    text: String,
    raw: bool,
    /// For `<a>`: the href.
    href: Option<String>,
    /// For parameters: the parameter name.
    param: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Text goes to a capture buffer.
    Capture,
    /// Inside a table cell or heading: every break is a space.
    Flat,
    /// Inside a list item / task: paragraph breaks are spaces, nested items start lines.
    Item,
    /// Top level: paragraphs become blocks.
    Block,
}

struct Converter<'a> {
    input: &'a str,
    out: Out,
    frames: Vec<Frame>,
    /// Element name → id; ids index `open_counts`.
    names: HashMap<Box<str>, u32>,
    /// Number of open frames per interned element name (finds the frame an end tag closes).
    open_counts: Vec<u32>,
    skip: usize,
    caps: Vec<Capture>,
    lists: Vec<ListState>,
    tasks: Vec<bool>,
    rows: Vec<RowState>,
    macros: Vec<MacroState>,
    refs: Vec<RefState>,
    adfs: Vec<AdfState>,
    /// Where each open layout column's blocks start.
    layout_cells: Vec<usize>,
    inclusions: Vec<Inclusion>,
    excerpts: Vec<Excerpt>,
    cell_depth: usize,
    item_depth: usize,
    /// Incremented whenever visible text is produced anywhere (used for "had a body?" tests).
    text_mark: u64,
    // Positions of the last terminators, to reject markup that can never close in O(1).
    last_comment_end: OnceCell<Option<usize>>,
    last_cdata_end: OnceCell<Option<usize>>,
    last_pi_end: OnceCell<Option<usize>>,
    last_gt: OnceCell<Option<usize>>,
}

impl<'a> Converter<'a> {
    fn new(input: &'a str) -> Self {
        Converter {
            input,
            out: Out::default(),
            frames: Vec::new(),
            names: HashMap::new(),
            open_counts: Vec::new(),
            skip: 0,
            caps: Vec::new(),
            lists: Vec::new(),
            tasks: Vec::new(),
            rows: Vec::new(),
            macros: Vec::new(),
            refs: Vec::new(),
            adfs: Vec::new(),
            layout_cells: Vec::new(),
            inclusions: Vec::new(),
            excerpts: Vec::new(),
            cell_depth: 0,
            item_depth: 0,
            text_mark: 0,
            last_comment_end: OnceCell::new(),
            last_cdata_end: OnceCell::new(),
            last_pi_end: OnceCell::new(),
            last_gt: OnceCell::new(),
        }
    }

    fn finish(mut self) -> Converted {
        while let Some(frame) = self.frames.pop() {
            self.close(frame.kind);
        }
        if let Some(level) = self.out.heading {
            self.out.finish_heading(level);
        }
        self.out.flush();
        self.out.drop_or_emit_label();
        Converted { blocks: self.out.blocks, inclusions: self.inclusions, excerpts: self.excerpts }
    }

    // -----------------------------------------------------------------------------------------
    // Tokenising with recovery
    // -----------------------------------------------------------------------------------------

    fn run(&mut self) {
        let input = self.input;
        let bytes = input.as_bytes();
        let mut base = 0usize;
        'restart: while base < input.len() {
            // quick-xml skips a byte-order mark at the start of what it reads, which would
            // shift every position below off the input's; it is invisible, so skip it here.
            if input[base..].starts_with('\u{feff}') {
                base += '\u{feff}'.len_utf8();
                continue;
            }
            let mut reader = Reader::from_str(&input[base..]);
            {
                let cfg = reader.config_mut();
                cfg.check_end_names = false;
                cfg.allow_unmatched_ends = true;
                cfg.allow_dangling_amp = true;
                cfg.check_comments = false;
                cfg.expand_empty_elements = false;
                cfg.trim_text(false);
            }
            loop {
                let pos = base + usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                if pos >= input.len() {
                    break 'restart;
                }
                if bytes[pos] == b'<' && !self.plausible_markup(pos) {
                    self.on_text("<");
                    base = pos + 1;
                    continue 'restart;
                }
                match reader.read_event() {
                    Ok(Event::Eof) => break 'restart,
                    Ok(Event::Start(e)) => {
                        if valid_name(e.name().as_ref()) {
                            self.start(&e, false);
                        } else {
                            self.on_text("<");
                            base = pos + 1;
                            continue 'restart;
                        }
                    }
                    Ok(Event::Empty(e)) => {
                        if valid_name(e.name().as_ref()) {
                            self.start(&e, true);
                        } else {
                            self.on_text("<");
                            base = pos + 1;
                            continue 'restart;
                        }
                    }
                    Ok(Event::End(e)) => {
                        let name = e.name();
                        if valid_name(name.as_ref()) {
                            self.end(name.as_ref());
                        } else {
                            self.on_text("<");
                            base = pos + 1;
                            continue 'restart;
                        }
                    }
                    Ok(Event::Text(t)) => {
                        let s = utf8(&t);
                        self.on_text(&s);
                    }
                    Ok(Event::CData(t)) => {
                        let s = utf8(&t);
                        self.on_text(&s);
                    }
                    Ok(Event::GeneralRef(r)) => {
                        let name = utf8(&r);
                        match classify_entity(&name) {
                            EntityName::Invalid => {
                                // `AT&T rocks;` — a stray ampersand: keep it and re-read after it.
                                self.on_text("&");
                                base = pos + 1;
                                continue 'restart;
                            }
                            EntityName::Valid => {
                                let mut tmp = [0u8; 4];
                                match resolve_entity(&name) {
                                    Some(Resolved::Static(v)) => self.on_text(v),
                                    Some(Resolved::Char(c)) => self.on_text(c.encode_utf8(&mut tmp)),
                                    None => {
                                        let lit = format!("&{name};");
                                        self.on_text(&lit);
                                    }
                                }
                            }
                        }
                    }
                    Ok(Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_)) => {}
                    Err(_) => {
                        // Safety net: keep the offending character as text and re-read after it.
                        let p = if input.is_char_boundary(pos) { pos } else { next_boundary(input, pos) };
                        match input[p..].chars().next() {
                            Some(ch) => {
                                let mut tmp = [0u8; 4];
                                self.on_text(ch.encode_utf8(&mut tmp));
                                base = p + ch.len_utf8();
                            }
                            None => break 'restart,
                        }
                        continue 'restart;
                    }
                }
            }
        }
    }

    /// Cheap check that the `<` at `pos` starts markup quick-xml can close, so a stray `<`
    /// never makes the parser scan to the end of the input (which would be quadratic).
    fn plausible_markup(&self, pos: usize) -> bool {
        let bytes = self.input.as_bytes();
        let rest = &bytes[pos..];
        match rest.get(1).copied() {
            Some(b'/') => rest.get(2).is_some_and(|&b| name_start(b)) && self.tag_closes(pos),
            Some(b'!') => {
                if rest.starts_with(b"<!--") {
                    self.last_comment_end.get_or_init(|| self.input.rfind("-->")).is_some_and(|e| e >= pos + 4)
                } else if rest.starts_with(b"<![CDATA[") {
                    self.last_cdata_end.get_or_init(|| self.input.rfind("]]>")).is_some_and(|e| e >= pos + 9)
                } else if rest.len() >= 9 && rest[2..9].eq_ignore_ascii_case(b"DOCTYPE") {
                    self.last_gt.get_or_init(|| self.input.rfind('>')).is_some_and(|e| e > pos) && self.tag_closes(pos)
                } else {
                    false
                }
            }
            Some(b'?') => self.last_pi_end.get_or_init(|| self.input.rfind("?>")).is_some_and(|e| e > pos),
            Some(b) => name_start(b) && self.tag_closes(pos),
            None => false,
        }
    }

    /// Mirrors quick-xml's element scanner (quote-aware search for `>`), but gives up at the next
    /// `<`: `<` is not allowed inside a tag, so the scan never goes past the next token. Outside
    /// quoted values only attribute syntax is accepted, so `a<b && c>d` is text, not a `<b>`.
    fn tag_closes(&self, pos: usize) -> bool {
        let mut quote = 0u8;
        for &b in &self.input.as_bytes()[pos + 1..] {
            if quote != 0 {
                match b {
                    b'<' => return false,
                    _ if b == quote => quote = 0,
                    _ => {}
                }
                continue;
            }
            match b {
                b'>' => return true,
                b'"' | b'\'' => quote = b,
                b'_' | b':' | b'.' | b'-' | b'=' | b'/' | b'!' => {}
                _ if b.is_ascii_alphanumeric() || b.is_ascii_whitespace() || b >= 0x80 => {}
                _ => return false,
            }
        }
        false
    }

    // -----------------------------------------------------------------------------------------
    // Text routing
    // -----------------------------------------------------------------------------------------

    fn ctx(&self) -> Ctx {
        if !self.caps.is_empty() {
            Ctx::Capture
        } else if self.cell_depth > 0 || self.out.heading.is_some() {
            Ctx::Flat
        } else if self.item_depth > 0 {
            Ctx::Item
        } else {
            Ctx::Block
        }
    }

    fn on_text(&mut self, s: &str) {
        if self.skip > 0 || s.is_empty() {
            return;
        }
        if let Some(cap) = self.caps.last_mut() {
            cap.text.push_str(s);
            if s.chars().any(|c| !c.is_whitespace()) {
                self.text_mark += 1;
            }
        } else if self.out.text(s) {
            self.text_mark += 1;
        }
    }

    fn soft(&mut self) {
        if let Some(cap) = self.caps.last_mut() {
            cap.text.push(if cap.raw { '\n' } else { ' ' });
        } else {
            self.out.soft();
        }
    }

    fn block_break(&mut self) {
        match self.ctx() {
            Ctx::Capture => self.soft(),
            Ctx::Flat | Ctx::Item => self.out.soft(),
            Ctx::Block => self.out.flush(),
        }
    }

    fn br(&mut self) {
        match self.ctx() {
            Ctx::Capture => self.soft(),
            Ctx::Flat | Ctx::Item => self.out.soft(),
            Ctx::Block => self.out.line_break(),
        }
    }

    fn list_level(&self) -> usize {
        self.lists.len().min(MAX_INDENT_LEVELS)
    }

    /// Indentation for an item marker at the current list level.
    fn item_indent(&self) -> String {
        "  ".repeat(self.list_level().saturating_sub(1))
    }

    /// Indentation for continuation lines inside the current item.
    fn cont_indent(&self) -> String {
        "  ".repeat(self.list_level().max(1))
    }

    fn push_capture(&mut self, raw: bool, href: Option<String>, param: Option<String>) -> bool {
        if self.caps.len() >= MAX_CAPTURE_DEPTH {
            return false;
        }
        self.caps.push(Capture { text: String::new(), raw, href, param });
        true
    }

    fn emit_code(&mut self, title: &str, lang: &str, code: &str) {
        let code = normalize_code(code);
        let title = collapse_ws(title);
        if code.is_empty() && title.is_empty() {
            return;
        }
        self.text_mark += 1;
        let ctx = self.ctx();
        if matches!(ctx, Ctx::Capture | Ctx::Flat) {
            if let Some(cap) = self.caps.last_mut() {
                cap.text.push('\n');
                if !title.is_empty() {
                    cap.text.push_str(&title);
                    cap.text.push('\n');
                }
                cap.text.push_str(&code);
                cap.text.push('\n');
            } else {
                self.out.text(&title);
                self.out.soft();
                self.out.text(&code);
                self.out.soft();
            }
            return;
        }
        let mut block = String::with_capacity(code.len() + title.len() + lang.len() + 16);
        if !title.is_empty() {
            block.push_str(&title);
            block.push('\n');
        }
        if !code.is_empty() {
            let fence = "`".repeat(longest_backtick_run(&code).max(2) + 1);
            block.push_str(&fence);
            block.push_str(&collapse_ws(lang));
            block.push('\n');
            block.push_str(&code);
            block.push('\n');
            block.push_str(&fence);
        }
        let block = block.trim_end();
        match ctx {
            Ctx::Item => {
                self.out.line_break();
                let indent = self.cont_indent();
                for line in block.split('\n') {
                    self.out.pending_prefix.clone_from(&indent);
                    self.out.raw(line);
                    self.out.line_break();
                }
                self.out.pending_prefix = indent;
            }
            _ => {
                self.out.flush();
                if let Some((label, _)) = self.out.pending_label.take() {
                    let mut with_label = label;
                    with_label.push('\n');
                    with_label.push_str(block);
                    self.out.blocks.push(Block::Text(with_label));
                } else {
                    self.out.blocks.push(Block::Text(block.to_owned()));
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Elements
    // -----------------------------------------------------------------------------------------

    fn start(&mut self, e: &BytesStart<'_>, empty: bool) {
        let qname = e.name();
        let name = lower_name(qname.as_ref());
        let void = empty || is_void(&name);
        if self.skip > 0 {
            if !void {
                self.push_frame(&name, Kind::Inline);
            }
            return;
        }
        let kind = self.open(&name, e);
        if void {
            self.close(kind);
        } else {
            self.push_frame(&name, kind);
        }
    }

    fn push_frame(&mut self, name: &str, kind: Kind) {
        let id = match self.names.get(name) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.open_counts.len()).unwrap_or(u32::MAX);
                self.names.insert(name.into(), id);
                self.open_counts.push(0);
                id
            }
        };
        if let Some(c) = self.open_counts.get_mut(id as usize) {
            *c += 1;
        }
        self.frames.push(Frame { name: id, kind });
    }

    fn end(&mut self, raw_name: &[u8]) {
        let name = lower_name(raw_name);
        let Some(&id) = self.names.get(&*name) else {
            return;
        };
        if self.open_counts.get(id as usize).copied().unwrap_or(0) == 0 {
            return; // stray end tag
        }
        while let Some(frame) = self.frames.pop() {
            if let Some(c) = self.open_counts.get_mut(frame.name as usize) {
                *c = c.saturating_sub(1);
            }
            self.close(frame.kind);
            if frame.name == id {
                break;
            }
        }
    }

    fn open(&mut self, name: &str, e: &BytesStart<'_>) -> Kind {
        match name {
            "p" | "dt" | "dd" | "figcaption" | "summary" | "address" | "caption" | "legend" => {
                self.block_break();
                Kind::Para
            }
            "div" | "blockquote" | "section" | "article" | "header" | "footer" | "main" | "nav" | "aside"
            | "figure" | "center" | "details" | "dl" | "form" | "fieldset" | "body" | "html" | "ac:layout"
            | "ac:layout-section" | "ac:adf-content" | "ac:adf-leaf" => {
                self.block_break();
                Kind::Block
            }
            "ac:layout-cell" => {
                self.block_break();
                self.layout_cells.push(self.out.blocks.len());
                Kind::LayoutCell
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                if self.ctx() == Ctx::Block {
                    // A panel's title waiting for its body stays waiting: it goes with the
                    // first text under this heading, not into a passage of its own.
                    self.out.flush();
                    let level = name.as_bytes()[1] - b'0';
                    self.out.heading = Some(level);
                    Kind::Heading(level)
                } else {
                    self.block_break();
                    Kind::Para
                }
            }
            "br" => {
                self.br();
                Kind::Inline
            }
            "hr" => {
                self.block_break();
                Kind::Inline
            }
            "ul" | "ol" | "ac:task-list" => {
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item => self.out.line_break(),
                    Ctx::Block => self.out.flush(),
                }
                let ordered = name == "ol";
                let next = if ordered { attr(e, b"start").and_then(|s| s.trim().parse().ok()).unwrap_or(1) } else { 1 };
                self.lists.push(ListState { ordered, next });
                Kind::List
            }
            "li" => {
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item | Ctx::Block => {
                        self.out.line_break();
                        let marker = match self.lists.last_mut() {
                            Some(l) if l.ordered => {
                                let n = l.next;
                                l.next = l.next.saturating_add(1);
                                format!("{n}. ")
                            }
                            _ => "- ".to_owned(),
                        };
                        self.out.pending_prefix = self.item_indent() + &marker;
                    }
                }
                self.item_depth += 1;
                Kind::Item
            }
            "ac:task" => {
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item | Ctx::Block => {
                        self.out.line_break();
                        self.out.pending_prefix = self.item_indent();
                    }
                }
                self.item_depth += 1;
                self.tasks.push(false);
                Kind::Task
            }
            "ac:task-status" => {
                if self.push_capture(false, None, None) {
                    Kind::TaskStatus
                } else {
                    self.skip += 1;
                    Kind::Skip
                }
            }
            "ac:task-body" => {
                let marker = if self.tasks.last().copied().unwrap_or(false) { "[x] " } else { "[ ] " };
                match self.ctx() {
                    Ctx::Item | Ctx::Block if !self.out.line_started => {
                        let prefix = std::mem::take(&mut self.out.pending_prefix);
                        self.out.pending_prefix = prefix + marker;
                    }
                    _ => {
                        self.on_text(marker);
                    }
                }
                Kind::TaskBody
            }
            "ac:task-id" | "ac:task-uuid" | "ac:placeholder" | "ac:adf-attribute" | "script" | "style" | "head"
            | "at:declarations" | "ac:adf-mark" => {
                self.skip += 1;
                Kind::Skip
            }
            "table" => {
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item => self.out.line_break(),
                    Ctx::Block => self.out.flush(),
                }
                Kind::Table
            }
            "tr" => {
                let ctx = self.ctx();
                let active = matches!(ctx, Ctx::Item | Ctx::Block);
                if active {
                    self.out.line_break();
                    if let Some((label, _)) = self.out.pending_label.take() {
                        self.out.raw(&label);
                        self.out.line_break();
                    }
                    if ctx == Ctx::Item {
                        self.out.pending_prefix = self.cont_indent();
                    }
                } else {
                    self.soft();
                }
                self.rows.push(RowState { active, buf_start: self.out.buf.len(), mark: self.text_mark, cells: 0 });
                Kind::Row
            }
            "td" | "th" => {
                let top = self.cell_depth == 0 && self.caps.is_empty();
                match self.rows.last_mut() {
                    Some(row) if top && row.active => {
                        if row.cells > 0 {
                            let sep = if self.out.line_has_text { " |" } else { "|" };
                            self.out.raw(sep);
                            self.out.pending_space = true;
                        }
                        row.cells += 1;
                    }
                    _ => self.soft(),
                }
                self.cell_depth += 1;
                Kind::Cell
            }
            "pre" => {
                if self.ctx() != Ctx::Flat && self.push_capture(true, None, None) {
                    Kind::Pre
                } else {
                    Kind::Inline
                }
            }
            "a" => {
                let href = attr(e, b"href").unwrap_or_default();
                if self.push_capture(false, Some(href), None) { Kind::Anchor } else { Kind::Inline }
            }
            "time" => {
                if let Some(v) = attr(e, b"datetime") {
                    let v = format!(" {} ", shown_date(v.trim()));
                    self.on_text(&v);
                }
                Kind::Inline
            }
            "img" => {
                if let Some(v) = attr(e, b"alt").filter(|v| !v.trim().is_empty()) {
                    let v = format!(" {} ", v.trim());
                    self.on_text(&v);
                }
                Kind::Inline
            }
            "ac:emoticon" => {
                if let Some(v) = emoticon_text(e) {
                    self.on_text(&v);
                }
                Kind::Inline
            }
            "ac:structured-macro" | "ac:macro" => self.open_macro(e),
            "ac:parameter" | "ac:default-parameter" => {
                let pname =
                    if name == "ac:parameter" { attr(e, b"ac:name").unwrap_or_default() } else { String::new() };
                if self.push_capture(false, None, Some(pname)) {
                    Kind::Param
                } else {
                    self.skip += 1;
                    Kind::Skip
                }
            }
            "ac:rich-text-body" => {
                self.block_break();
                let label = match self.macros.last_mut() {
                    Some(m) if !m.label_set => {
                        m.label_set = true;
                        m.label()
                    }
                    _ => None,
                };
                if let Some((label, keep)) = label {
                    match self.ctx() {
                        Ctx::Block => self.out.set_label(label, keep),
                        _ => {
                            self.on_text(&label);
                            self.soft();
                        }
                    }
                }
                Kind::MacroBody
            }
            "ac:plain-text-body" => {
                if self.push_capture(true, None, None) {
                    Kind::PlainBody
                } else {
                    Kind::Inline
                }
            }
            "ac:link" => {
                let anchor = attr(e, b"ac:anchor").unwrap_or_default();
                self.refs.push(RefState {
                    image: false,
                    block: false,
                    mark: self.text_mark,
                    fallback: None,
                    alt: String::new(),
                    title: String::new(),
                    anchor,
                });
                Kind::Ref
            }
            "ac:image" => {
                let parent_is_container = match self.frames.last() {
                    None => true,
                    Some(f) => {
                        matches!(
                            f.kind,
                            Kind::Block
                                | Kind::LayoutCell
                                | Kind::MacroBody
                                | Kind::AdfFallback
                                | Kind::Adf
                                | Kind::Macro
                        )
                    }
                };
                let block = parent_is_container && self.ctx() == Ctx::Block;
                if block {
                    self.out.flush();
                }
                self.refs.push(RefState {
                    image: true,
                    block,
                    mark: self.text_mark,
                    fallback: None,
                    alt: attr(e, b"ac:alt").unwrap_or_default(),
                    title: attr(e, b"ac:title").unwrap_or_default(),
                    anchor: String::new(),
                });
                Kind::Ref
            }
            "ac:adf-extension" => {
                self.adfs.push(AdfState {
                    node_depth: 0,
                    fallback_mark: None,
                    fallback_used: false,
                    alt: String::new(),
                });
                Kind::Adf
            }
            "ac:adf-node" => {
                let depth = match self.adfs.last() {
                    Some(a) => a.node_depth,
                    None => return Kind::Inline,
                };
                let captured = depth == 0 && self.push_capture(false, None, None);
                if let Some(a) = self.adfs.last_mut() {
                    a.node_depth += 1;
                }
                self.soft();
                Kind::AdfNode { captured }
            }
            "ac:adf-fallback" => {
                self.block_break();
                let mark = self.text_mark;
                if let Some(a) = self.adfs.last_mut() {
                    a.fallback_mark = Some(mark);
                }
                Kind::AdfFallback
            }
            _ if name.starts_with("ri:") => {
                self.open_resource(name, e);
                Kind::Inline
            }
            _ => Kind::Inline,
        }
    }

    fn open_macro(&mut self, e: &BytesStart<'_>) -> Kind {
        let mname = attr(e, b"ac:name").unwrap_or_default().trim().to_ascii_lowercase();
        if GENERATED_MACROS.contains(&mname.as_str()) {
            self.skip += 1;
            return Kind::Skip;
        }
        let kind = match mname.as_str() {
            "code" => MacroKind::Code,
            "noformat" => MacroKind::Noformat,
            "info" | "note" | "warning" | "tip" | "panel" => MacroKind::Panel,
            "expand" => MacroKind::Expand,
            "status" => MacroKind::Status,
            "jira" | "jiraissues" => MacroKind::Jira,
            "include" => MacroKind::Include { excerpt: false },
            "excerpt-include" => MacroKind::Include { excerpt: true },
            "excerpt" => {
                let inline_start = match self.ctx() {
                    Ctx::Block => {
                        self.out.flush();
                        None
                    }
                    _ => {
                        // The line's list marker goes before the excerpt, not into it.
                        if !self.out.line_started {
                            self.out.start_line();
                        }
                        Some(self.out.buf.len())
                    }
                };
                MacroKind::Excerpt { start: self.out.blocks.len(), inline_start }
            }
            _ => MacroKind::Generic,
        };
        self.macros.push(MacroState { kind, params: Vec::new(), code: None, label_set: false, target: None });
        Kind::Macro
    }

    fn open_resource(&mut self, name: &str, e: &BytesStart<'_>) {
        if let Some(m) = self.macros.last_mut()
            && matches!(m.kind, MacroKind::Include { .. })
            && m.target.is_none()
            && let ("ri:page" | "ri:blog-post", Some(title)) = (name, attr(e, b"ri:content-title"))
        {
            m.target = Some(PageRef {
                space_key: attr(e, b"ri:space-key").map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()),
                title: title.trim().to_owned(),
                blog_post: name == "ri:blog-post",
            });
        }
        let Some(target) = self.refs.last() else {
            return;
        };
        // An image's resource is its file, whose name the page does not show.
        if target.image || (target.fallback.is_some() && name != "ri:user") {
            return;
        }
        let value = match name {
            "ri:page" | "ri:blog-post" => attr(e, b"ri:content-title"),
            "ri:attachment" => attr(e, b"ri:filename"),
            "ri:user" => Some(match attr(e, b"ri:account-id").filter(|id| valid_account_id(id)) {
                Some(id) => format!("{MENTION_START}{id}{MENTION_END}"),
                None => "@user".to_owned(),
            }),
            "ri:space" => attr(e, b"ri:space-key"),
            "ri:url" => attr(e, b"ri:value"),
            "ri:shortcut" => attr(e, b"ri:parameter"),
            _ => None,
        };
        if let Some(v) = value.map(|v| collapse_ws(&v)).filter(|v| !v.is_empty())
            && let Some(target) = self.refs.last_mut()
            && target.fallback.is_none()
        {
            target.fallback = Some(v);
        }
    }

    fn close(&mut self, kind: Kind) {
        match kind {
            Kind::Inline => {}
            Kind::Skip => self.skip = self.skip.saturating_sub(1),
            Kind::Block | Kind::Para => self.block_break(),
            Kind::LayoutCell => {
                self.block_break();
                let start = self.layout_cells.pop().unwrap_or(self.out.blocks.len());
                let opened = self.out.blocks[start.min(self.out.blocks.len())..]
                    .iter()
                    .filter_map(|b| match b {
                        Block::Heading { level, .. } => Some(*level),
                        _ => None,
                    })
                    .min();
                if let Some(level) = opened {
                    self.out.blocks.push(Block::SectionEnd { level });
                }
            }
            Kind::Heading(level) => {
                if self.out.heading == Some(level) {
                    self.out.finish_heading(level);
                } else {
                    self.block_break();
                }
            }
            Kind::List => {
                self.lists.pop();
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item => {
                        self.out.line_break();
                        self.out.pending_prefix = self.cont_indent();
                    }
                    Ctx::Block => self.out.flush(),
                }
            }
            Kind::Item | Kind::Task => {
                self.item_depth = self.item_depth.saturating_sub(1);
                if kind == Kind::Task {
                    self.tasks.pop();
                }
                match self.ctx() {
                    Ctx::Capture | Ctx::Flat => self.soft(),
                    Ctx::Item | Ctx::Block => self.out.line_break(),
                }
            }
            Kind::TaskBody => {}
            Kind::TaskStatus => {
                if let Some(cap) = self.caps.pop()
                    && let Some(t) = self.tasks.last_mut()
                {
                    *t = cap.text.trim().eq_ignore_ascii_case("complete");
                }
            }
            Kind::Table => match self.ctx() {
                Ctx::Capture | Ctx::Flat => self.soft(),
                Ctx::Item => self.out.line_break(),
                Ctx::Block => self.out.flush(),
            },
            Kind::Row => match self.rows.pop() {
                Some(row) if row.active => {
                    if row.mark == self.text_mark {
                        self.out.truncate_to(row.buf_start);
                    } else {
                        self.out.line_break();
                    }
                }
                _ => self.soft(),
            },
            Kind::Cell => {
                self.cell_depth = self.cell_depth.saturating_sub(1);
                self.soft();
            }
            Kind::Pre => {
                if let Some(cap) = self.caps.pop() {
                    self.emit_code("", "", &cap.text);
                }
            }
            Kind::Anchor => {
                if let Some(cap) = self.caps.pop() {
                    // A link shows its text; its URL is not on the page (and was most of
                    // the noise a search matched). A link without text shows its URL.
                    let text = collapse_ws(&cap.text);
                    let href = collapse_ws(cap.href.as_deref().unwrap_or(""));
                    if text.is_empty() && !href.is_empty() && !href.starts_with('#') {
                        self.on_text(&format!(" {href} "));
                    } else {
                        self.on_text(&text);
                    }
                }
            }
            Kind::Param => {
                if let Some(cap) = self.caps.pop()
                    && let Some(m) = self.macros.last_mut()
                    && m.params.len() < 64
                {
                    m.params.push((cap.param.unwrap_or_default(), cap.text));
                }
            }
            Kind::PlainBody => {
                if let Some(cap) = self.caps.pop() {
                    if let Some(m) = self.macros.last_mut() {
                        m.code.get_or_insert_with(String::new).push_str(&cap.text);
                    } else {
                        self.emit_code("", "", &cap.text);
                    }
                }
            }
            Kind::MacroBody => {
                self.block_break();
                if self.ctx() == Ctx::Block && self.macros.last().is_some_and(|m| m.label_set) {
                    self.out.drop_or_emit_label();
                }
            }
            Kind::Macro => {
                if let Some(m) = self.macros.pop() {
                    self.close_macro(m);
                }
            }
            Kind::Ref => {
                if let Some(r) = self.refs.pop() {
                    self.close_ref(r);
                }
            }
            Kind::Adf => {
                if let Some(a) = self.adfs.pop()
                    && !a.fallback_used
                {
                    let alt = collapse_ws(&a.alt);
                    if !alt.is_empty() {
                        self.block_break();
                        self.on_text(&alt);
                        self.block_break();
                    }
                }
            }
            Kind::AdfNode { captured } => {
                let text = if captured { self.caps.pop().map(|c| c.text) } else { None };
                if let Some(a) = self.adfs.last_mut() {
                    a.node_depth = a.node_depth.saturating_sub(1);
                    if let Some(t) = text {
                        a.alt.push_str(&t);
                        a.alt.push(' ');
                    }
                }
                self.soft();
            }
            Kind::AdfFallback => {
                self.block_break();
                let mark = self.text_mark;
                if let Some(a) = self.adfs.last_mut()
                    && a.fallback_mark.is_some_and(|m| m != mark)
                {
                    a.fallback_used = true;
                }
            }
        }
    }

    fn close_macro(&mut self, m: MacroState) {
        match m.kind {
            MacroKind::Code | MacroKind::Noformat => {
                let lang = if m.kind == MacroKind::Code { m.param_or_default("language") } else { "" };
                let code = m.code.as_deref().unwrap_or("");
                self.emit_code(m.param("title"), lang, code);
            }
            MacroKind::Status => {
                let t = format!(" {} ", m.param_or_default("title"));
                self.on_text(&t);
            }
            MacroKind::Jira => {
                let t = format!(" {} ", m.param_or_default("key"));
                self.on_text(&t);
            }
            MacroKind::Include { excerpt } => {
                // The legacy form names the page in its default parameter: `KEY:Title` or
                // `Title`.
                let target = m.target.clone().or_else(|| page_named(m.param("")));
                if let Some(target) = target {
                    self.block_break();
                    let excerpt = excerpt.then(|| collapse_ws(m.param("name")));
                    self.inclusions.push(Inclusion { at: self.out.blocks.len(), target, excerpt });
                }
            }
            MacroKind::Excerpt { start, inline_start } => {
                let inline = match inline_start {
                    None => {
                        self.out.flush();
                        None
                    }
                    // The block is still being written (the list or table goes on), unless
                    // something in the excerpt ended it.
                    Some(at) if self.out.blocks.len() == start => {
                        Some(self.out.buf.get(at..).map(|text| text.trim().to_string()).unwrap_or_default())
                    }
                    Some(_) => None,
                };
                let name = collapse_ws(m.param_or_default("name"));
                self.excerpts.push(Excerpt { name, start, end: self.out.blocks.len(), inline });
            }
            MacroKind::Generic | MacroKind::Panel | MacroKind::Expand => {
                if let Some(code) = m.code.as_deref() {
                    // Third-party code macros keep a title and a language like `code` does.
                    self.emit_code(m.param("title"), m.param("language"), code);
                } else if m.kind == MacroKind::Generic && !m.param("body").is_empty() {
                    // Macros that keep their text in a parameter (math formulas).
                    let t = format!(" {} ", m.param("body"));
                    self.on_text(&t);
                }
                if !m.label_set
                    && let Some((label, true)) = m.label()
                {
                    self.block_break();
                    self.on_text(&label);
                    self.block_break();
                }
            }
        }
    }

    fn close_ref(&mut self, r: RefState) {
        if r.mark == self.text_mark {
            // An image shows its alternative text or title; its file name
            // (`image2020-5-18_15-37-19.png`) is not on the page.
            let text = if r.image {
                [r.alt.trim(), r.title.trim()].into_iter().find(|s| !s.is_empty()).map(|s| format!(" {s} "))
            } else {
                r.fallback.or_else(|| Some(r.anchor.trim().to_owned()).filter(|s| !s.is_empty()))
            };
            if let Some(t) = text {
                self.on_text(&t);
            }
        }
        if r.block {
            self.block_break();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `<time datetime="2024-01-31"/>` date as Confluence shows it: `31 Jan 2024` (the
/// month's name is what people search by); anything else as written.
fn shown_date(datetime: &str) -> Cow<'_, str> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = datetime.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return Cow::Borrowed(datetime);
    };
    let month = month.parse::<usize>().ok().filter(|m| (1..=12).contains(m));
    let day = day.get(..2).and_then(|d| d.parse::<u8>().ok()).filter(|d| (1..=31).contains(d));
    match (year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()), month, day) {
        (true, Some(month), Some(day)) => Cow::Owned(format!("{day} {} {year}", MONTHS[month - 1])),
        _ => Cow::Borrowed(datetime),
    }
}

/// The page a legacy `include` names in plain text: `KEY:Title` (a space key is letters,
/// digits and `_`, or `~` and an id) or just `Title`.
fn page_named(text: &str) -> Option<PageRef> {
    let text = collapse_ws(text);
    if text.is_empty() {
        return None;
    }
    let (space_key, title) = match text.split_once(':') {
        Some((key, title))
            if !key.is_empty()
                && !title.trim().is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '~') =>
        {
            (Some(key.to_owned()), title.trim().to_owned())
        }
        _ => (None, text),
    };
    Some(PageRef { space_key, title, blog_post: false })
}

/// What an emoticon shows: its `ac:emoji-fallback`, else the character its `ac:emoji-id`
/// spells in hex (`1f44d`, `1f469-200d-1f4bb`), else the character of its classic name
/// (`tick`, `cross`, `warning` … — status tables are made of these).
fn emoticon_text(e: &BytesStart<'_>) -> Option<String> {
    if let Some(fallback) = attr(e, b"ac:emoji-fallback").filter(|f| !f.trim().is_empty()) {
        return Some(fallback);
    }
    let from_id = attr(e, b"ac:emoji-id").and_then(|id| {
        id.split('-').map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)).collect::<Option<String>>()
    });
    if let Some(text) = from_id.filter(|t| !t.is_empty()) {
        return Some(text);
    }
    let name = attr(e, b"ac:name")?;
    let text = match name.trim() {
        "tick" => "✔",
        "cross" => "✖",
        "warning" => "⚠",
        "information" => "ℹ",
        "question" => "?",
        "plus" => "+",
        "minus" => "−",
        "light-on" | "light-off" => "💡",
        "yellow-star" | "red-star" | "green-star" | "blue-star" => "★",
        "thumbs-up" => "👍",
        "thumbs-down" => "👎",
        "smile" => "🙂",
        "sad" => "🙁",
        "cheeky" => "😛",
        "laugh" => "😀",
        "wink" => "😉",
        "heart" => "❤",
        "broken-heart" => "💔",
        _ => return None,
    };
    Some(text.to_owned())
}

/// Account ids are short and made of letters, digits, `:` and `-` (`557058:2f1c…`).
fn valid_account_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
}

fn utf8<'b>(bytes: &'b [u8]) -> Cow<'b, str> {
    String::from_utf8_lossy(bytes)
}

fn next_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn valid_name(name: &[u8]) -> bool {
    name.first().is_some_and(|&b| name_start(b))
        && name.iter().all(|&b| !matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'' | b'='))
}

fn lower_name(raw: &[u8]) -> Cow<'_, str> {
    let s = String::from_utf8_lossy(raw);
    if s.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(s.to_ascii_lowercase()) } else { s }
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "hr"
            | "img"
            | "col"
            | "input"
            | "meta"
            | "link"
            | "area"
            | "base"
            | "wbr"
            | "source"
            | "embed"
            | "param"
            | "track"
            | "keygen"
    )
}

/// Value of attribute `key` with all entities decoded; `None` if absent.
fn attr(e: &BytesStart<'_>, key: &[u8]) -> Option<String> {
    for a in e.html_attributes().with_checks(false) {
        let Ok(a) = a else { break };
        if a.key.as_ref() == key {
            return Some(unescape(&String::from_utf8_lossy(&a.value)));
        }
    }
    None
}

enum EntityName {
    /// Looks like an entity reference (`name`, `#123`, `#x1F`), resolvable or not.
    Valid,
    /// Not an entity at all (e.g. `T rocks` from `AT&T rocks;`).
    Invalid,
}

fn classify_entity(name: &str) -> EntityName {
    let b = name.as_bytes();
    let ok = if b.is_empty() || b.len() > MAX_ENTITY_NAME {
        false
    } else if b[0] == b'#' {
        if b.len() > 1 && (b[1] == b'x' || b[1] == b'X') {
            b.len() > 2 && b[2..].iter().all(u8::is_ascii_hexdigit)
        } else {
            b.len() > 1 && b[1..].iter().all(u8::is_ascii_digit)
        }
    } else {
        b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    if ok { EntityName::Valid } else { EntityName::Invalid }
}

enum Resolved {
    Static(&'static str),
    Char(char),
}

/// Resolves an XML, numeric or HTML named entity (`name` without `&` and `;`).
fn resolve_entity(name: &str) -> Option<Resolved> {
    let s: &'static str = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ if name.starts_with('#') => {
            let num = &name[1..];
            let code = if let Some(hex) = num.strip_prefix(['x', 'X']) {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                num.parse::<u32>().ok()?
            };
            if code == 0 {
                return None;
            }
            // The mention marks are the converter's own: a page cannot spell them.
            return char::from_u32(code).filter(|c| ![MENTION_START, MENTION_END].contains(c)).map(Resolved::Char);
        }
        _ => {
            if name.len() > MAX_ENTITY_NAME {
                return None;
            }
            let mut key = [0u8; MAX_ENTITY_NAME + 2];
            key[0] = b'&';
            key[1..=name.len()].copy_from_slice(name.as_bytes());
            key[name.len() + 1] = b';';
            let v: &'static [u8] = htmlize::ENTITIES.get(&key[..name.len() + 2])?;
            std::str::from_utf8(v).ok()?
        }
    };
    Some(Resolved::Static(s))
}

/// Decodes XML, numeric and HTML named entities in `s`; unknown ones are kept literally.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let window = &after[..after.len().min(MAX_ENTITY_NAME + 1)];
        let mut done = false;
        if let Some(semi) = window.find(';') {
            let name = &after[..semi];
            if let EntityName::Valid = classify_entity(name)
                && let Some(r) = resolve_entity(name)
            {
                match r {
                    Resolved::Static(v) => out.push_str(v),
                    Resolved::Char(c) => out.push(c),
                }
                rest = &after[semi + 1..];
                done = true;
            }
        }
        if !done {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Collapses whitespace runs to single spaces and trims.
fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Normalises code: CRLF → LF, drops leading blank lines and trailing whitespace.
fn normalize_code(code: &str) -> String {
    let code = if code.contains('\r') { code.replace("\r\n", "\n").replace('\r', "\n") } else { code.to_owned() };
    let trimmed_end = code.trim_end();
    let start = trimmed_end
        .char_indices()
        .take_while(|(_, c)| c.is_whitespace())
        .filter(|(_, c)| *c == '\n')
        .last()
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    trimmed_end[start..].to_owned()
}

fn longest_backtick_run(s: &str) -> usize {
    let mut best = 0;
    let mut cur = 0;
    for b in s.bytes() {
        if b == b'`' {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/storage/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn texts(doc: &Converted) -> Vec<&str> {
        doc.blocks.iter().map(Block::text).collect()
    }

    fn heading(level: u8, text: &str) -> Block {
        Block::Heading { level, text: text.to_owned() }
    }

    fn text(s: &str) -> Block {
        Block::Text(s.to_owned())
    }

    // ---- real samples ------------------------------------------------------------------------

    #[test]
    fn sample_airbyte_layout_placeholders_generated_macros_entities() {
        let doc = convert(&fixture("airbyte-cloud-personal-overview-98487.xml"));
        let plain = doc.plain_text();
        // Layout cells are transparent containers.
        assert!(plain.contains("Say hello to your colleagues who want to know your name"));
        // Emoji headings are headings.
        assert!(doc.blocks.contains(&heading(2, "📄 Recent pages that I've worked on")));
        assert!(doc.blocks.contains(&heading(2, "🖐 Get in touch")));
        // `&quot;` / `&lt;` decoded; coloured spans are transparent.
        assert!(plain.contains(
            "End with a bang! Some options are: \"I am so grateful to be here at \
             <Insert company name> and very excited to get started!\""
        ));
        // Placeholders, generated macros (recently-updated, blog-posts) and parameters dropped.
        for gone in ["Insert your email here", "Twitter handle", "titles", "max", "&quot;"] {
            assert!(!plain.contains(gone), "{gone:?} leaked into {plain:?}");
        }
        // `<p />` makes no empty block.
        assert!(doc.blocks.iter().all(|b| matches!(b, Block::SectionEnd { .. }) || !b.text().trim().is_empty()));
    }

    #[test]
    fn a_heading_in_a_layout_column_does_not_label_the_next_column() {
        let doc = convert(
            "<h1>Team</h1><ac:layout><ac:layout-section ac:type=\"two_equal\">\
             <ac:layout-cell><h2>Left</h2><p>left text</p></ac:layout-cell>\
             <ac:layout-cell><p>right text</p></ac:layout-cell></ac:layout-section></ac:layout>",
        );
        assert_eq!(
            doc.blocks,
            [
                heading(1, "Team"),
                heading(2, "Left"),
                text("left text"),
                Block::SectionEnd { level: 2 },
                text("right text"),
            ]
        );
        let chunks = crate::chunk::chunk(&doc, &crate::chunk::ChunkConfig::default());
        let paths: Vec<(Vec<&str>, &str)> =
            chunks.iter().map(|c| (c.headings.iter().map(String::as_str).collect(), c.text.as_str())).collect();
        assert_eq!(paths, [(vec!["Team", "Left"], "left text"), (vec!["Team"], "right text")]);
    }

    #[test]
    fn sample_images_captions_alt_and_filenames() {
        let doc = convert(&fixture("md2conf-images.xml"));
        let t = texts(&doc);
        assert_eq!(t[0], "This page has been generated with a tool.");
        assert_eq!(t[1], "Block images");
        // Block-level images become their own blocks: caption first, else `ac:alt`; an image
        // with neither shows no words, and its file name is not one.
        assert_eq!(
            &t[2..8],
            [
                "JPEG image with caption",
                "PNG image with caption",
                "A vector image",
                "draw.io image embedded in PNG",
                "draw.io image embedded in SVG",
                "An image at an external location",
            ]
        );
        assert_eq!(t[8], "Inline images");
        assert_eq!(t[9], "This is an inline image at an external location.");
        let plain = doc.plain_text();
        for file in ["http://confluence.atlassian.com", "figure_raster.png", "confluence_48_trans.png"] {
            assert!(!plain.contains(file), "{file} is not on the page");
        }
    }

    #[test]
    fn sample_panels_keep_bodies_drop_parameters() {
        let doc = convert(&fixture("md2conf-panel.xml"));
        let plain = doc.plain_text();
        for body in [
            "This is an information panel.",
            "This is the second paragraph with a link.",
            "This is a structured macro panel showing a warning.",
            "Tip of the day",
            "Success",
        ] {
            assert!(plain.contains(body), "missing {body:?}");
        }
        for param in ["panelIcon", "2139-fe0f", ":bulb:", "var(--ds", "ℹ️"] {
            assert!(!plain.contains(param), "parameter text {param:?} leaked");
        }
        assert_eq!(plain.matches("This is an admonition type used in Material for MkDocs.").count(), 7);
    }

    #[test]
    fn sample_tasklist_markers_without_ids() {
        let doc = convert(&fixture("md2conf-tasklist.xml"));
        assert_eq!(
            doc.blocks[1..],
            [
                heading(2, "Tasklist"),
                heading(3, "Examples"),
                text("[x] Finished action\n[ ] Unfinished action"),
                heading(3, "Counter-examples"),
                text("- first item is not a task\n- [x] finished action\n- [ ] unfinished action"),
                text("- [x] finished action\n- [ ] unfinished action\n- last item is not a task"),
            ]
        );
        let plain = doc.plain_text();
        assert!(!plain.contains("UUID") && !plain.contains("incomplete"));
    }

    // ---- every construct -----------------------------------------------------------------------

    #[test]
    fn constructs_fixture_full_output() {
        let mut doc = convert(&fixture("constructs.xml"));
        assert_eq!(doc.mentions(), ["557058:abc"]);
        doc.name_mentions(&HashMap::from([("557058:abc".to_string(), "Ada Lovelace".to_string())]));
        let expected = [
            text("Intro with entities: café — März – ää © ’quoted’ <tag> & \"x\" 'y' …"),
            heading(1, "Install"),
            heading(2, "Linux"),
            text("Run the installer as root.\nThen reboot."),
            text("1. Download\n  - pick a mirror\n  - check sha256\n2. Unpack"),
            text(
                "install.sh\n```bash\n#!/bin/sh\nset -e\nif [ \"$a\" ]]> \"$b\" ]; then\n    \
                 echo \"done\"\nfi\n```",
            ),
            text("```\nraw   spaced\n  text\n```"),
            heading(3, "Notes"),
            text("Data loss\nBack up first."),
            text("Use a fast disk."),
            text("Details for experts\nHidden but real content."),
            heading(2, "Windows"),
            text("Version | Status | Owner\n10 and 11 | SUPPORTED | @Ada Lovelace\n7 | WIN-42"),
            text("[x] Order licences\n[ ] Schedule rollout\n  [ ] Notify staff"),
            heading(1, "Reference"),
            text("See Release Notes and the FAQ and the top."),
            text("Manual: manual.pdf, blog First Post, https://example.org."),
            text("Figure 1: the architecture"),
            text("Logo company logo and inline. Mood 📧🙂."),
            text("Released on 31 Jan 2024 with reviewed wording. Contact:"),
            text("Excerpt summary text."),
            text("Grüße aus dem unbekannten Makro."),
            text("Legacy\nOld-style macro body."),
            text("```java\nint x = 1;\n```"),
            text("- We decided to ship"),
            text("Unknown element text survives."),
            heading(2, "Empty heading section"),
            heading(3, "Child of empty"),
            text("Child body."),
        ];
        assert_eq!(doc.blocks, expected);
        let plain = doc.plain_text();
        for dropped in ["maxLevel", "Included Page", "Ignored Title", "u-1", "editor comment", "Insert your"] {
            assert!(!plain.contains(dropped), "{dropped:?} should be dropped");
        }
    }

    #[test]
    fn adf_extension_without_fallback_uses_node_text() {
        let doc = convert(
            "<ac:adf-extension><ac:adf-node type=\"x\"><ac:adf-attribute key=\"k\">attr</ac:adf-attribute>\
             <ac:adf-content>first</ac:adf-content><ac:adf-node type=\"y\"><ac:adf-content>second\
             </ac:adf-content></ac:adf-node></ac:adf-node></ac:adf-extension>",
        );
        assert_eq!(doc.blocks, [text("first second")]);
    }

    #[test]
    fn lists_nest_with_two_space_indent_and_code_inside_items() {
        let doc = convert(
            "<ul><li>one<ul><li>nested <p>para</p></li><li><ol start=\"3\"><li>deep</li></ol></li></ul>\
             back in one</li><li>two<ac:structured-macro ac:name=\"code\"><ac:plain-text-body>\
             <![CDATA[a\n  b]]></ac:plain-text-body></ac:structured-macro></li></ul>",
        );
        assert_eq!(
            doc.blocks,
            [text("- one\n  - nested para\n    3. deep\n  back in one\n- two\n  ```\n  a\n    b\n  ```")]
        );
    }

    #[test]
    fn tables_flatten_cells_and_skip_empty_rows() {
        let doc = convert(
            "<table><tr><th>A</th><th>B</th></tr><tr><td></td><td></td></tr>\
             <tr><td><ul><li>x</li><li>y</li></ul></td><td><table><tr><td>in</td><td>ner</td></tr></table></td></tr>\
             <tr><td>a<br/>b</td><td><h2>not a heading</h2></td></tr></table>",
        );
        assert_eq!(doc.blocks, [text("A | B\nx y | in ner\na b | not a heading")]);
    }

    #[test]
    fn emoticons_without_a_fallback_show_their_character() {
        // A status table as Confluence's editor wrote it for years: classic names only.
        let doc = convert(
            "<table><tr><th>Browser</th><th>Supported</th></tr>\
             <tr><td>Firefox</td><td><ac:emoticon ac:name=\"tick\" /></td></tr>\
             <tr><td>IE 11</td><td><ac:emoticon ac:name=\"cross\" /></td></tr>\
             <tr><td>Safari</td><td><ac:emoticon ac:name=\"warning\" /> partly</td></tr></table>\
             <p>Launch <ac:emoticon ac:name=\"blue-star\" ac:emoji-shortname=\":rocket:\" ac:emoji-id=\"1f680\" /> \
             and <ac:emoticon ac:name=\"x\" ac:emoji-id=\"1f469-200d-1f4bb\" /> \
             or <ac:emoticon ac:name=\"nonsense\" ac:emoji-id=\"atlassian-nonsense\" />.</p>",
        );
        assert_eq!(
            doc.blocks,
            [
                text("Browser | Supported\nFirefox | ✔\nIE 11 | ✖\nSafari | ⚠ partly"),
                text("Launch 🚀 and 👩\u{200d}💻 or ."),
            ]
        );
    }

    #[test]
    fn macros_keep_text_held_in_parameters() {
        let doc = convert(
            "<p>Energy <ac:structured-macro ac:name=\"mathinline\"><ac:parameter ac:name=\"body\">E = mc^2</ac:parameter>\
             </ac:structured-macro> holds.</p>\
             <ac:structured-macro ac:name=\"code-pro\"><ac:parameter ac:name=\"title\">deploy.py</ac:parameter>\
             <ac:parameter ac:name=\"language\">python</ac:parameter>\
             <ac:plain-text-body><![CDATA[print(\"ship\")]]></ac:plain-text-body></ac:structured-macro>\
             <ac:structured-macro ac:name=\"toc-zone\"><ac:parameter ac:name=\"maxLevel\">2</ac:parameter></ac:structured-macro>",
        );
        assert_eq!(doc.blocks, [text("Energy E = mc^2 holds."), text("deploy.py\n```python\nprint(\"ship\")\n```")]);
    }

    #[test]
    fn links_show_their_text_and_images_not_their_file_names() {
        let doc = convert(
            "<p>Read <a href=\"https://wiki.example/x/AbCd?focus=1\">the guide</a> or \
             <a href=\"https://wiki.example/raw\"></a>.</p>\
             <ac:image><ri:attachment ri:filename=\"image2020-5-18_15-37-19.png\" /></ac:image>\
             <p><ac:image ac:alt=\"Deployment diagram\"><ri:url ri:value=\"https://cdn.example/d.png\" /></ac:image></p>",
        );
        assert_eq!(doc.blocks, [text("Read the guide or https://wiki.example/raw ."), text("Deployment diagram")]);
    }

    #[test]
    fn inclusions_name_their_page_and_excerpts_their_blocks() {
        let doc = convert(
            "<h2>Setup</h2><p>Before.</p>\
             <ac:structured-macro ac:name=\"include\"><ac:parameter ac:name=\"\"><ac:link>\
             <ri:page ri:space-key=\"OPS\" ri:content-title=\"Shared steps\"/></ac:link></ac:parameter>\
             </ac:structured-macro>\
             <p>After.</p>\
             <ac:structured-macro ac:name=\"excerpt-include\"><ac:parameter ac:name=\"\"><ac:link>\
             <ri:blog-post ri:content-title=\"News\"/></ac:link></ac:parameter>\
             <ac:parameter ac:name=\"nopanel\">true</ac:parameter></ac:structured-macro>\
             <ac:macro ac:name=\"include\"><ac:default-parameter>ENG:Glossary: terms</ac:default-parameter></ac:macro>\
             <ac:structured-macro ac:name=\"excerpt\"><ac:rich-text-body><p>The gist.</p></ac:rich-text-body>\
             </ac:structured-macro>\
             <ac:structured-macro ac:name=\"excerpt\"><ac:parameter ac:name=\"name\">short</ac:parameter>\
             <ac:rich-text-body><p>Shorter.</p></ac:rich-text-body></ac:structured-macro>",
        );
        assert_eq!(texts(&doc), ["Setup", "Before.", "After.", "The gist.", "Shorter."]);
        type Target<'a> = (usize, Option<&'a str>, &'a str, bool, Option<&'a str>);
        let targets: Vec<Target> = doc
            .inclusions
            .iter()
            .map(|i| {
                (i.at, i.target.space_key.as_deref(), i.target.title.as_str(), i.target.blog_post, i.excerpt.as_deref())
            })
            .collect();
        assert_eq!(
            targets,
            [
                (2, Some("OPS"), "Shared steps", false, None),
                (3, None, "News", true, Some("")),
                (3, Some("ENG"), "Glossary: terms", false, None),
            ]
        );
        assert_eq!(texts(&doc.excerpt("").unwrap()), ["The gist."]);
        assert_eq!(texts(&doc.excerpt("short").unwrap()), ["Shorter."]);
        assert!(doc.excerpt("other").is_none());
        assert!(convert("<p>none</p>").excerpt("").is_none());
    }

    #[test]
    fn excerpts_in_list_items_and_table_cells_keep_their_text() {
        let excerpt = |name: &str, body: &str| {
            format!(
                "<ac:structured-macro ac:name=\"excerpt\"><ac:parameter ac:name=\"name\">{name}</ac:parameter>\
                 <ac:rich-text-body>{body}</ac:rich-text-body></ac:structured-macro>"
            )
        };
        let doc = convert(&format!(
            "<ul><li>Intro</li><li>{}</li></ul>\
             <table><tbody><tr><th>Plan</th><td>{}</td></tr></tbody></table>\
             <p>Done.</p>",
            excerpt("item", "<p>Ship on <strong>Friday</strong>.</p>"),
            excerpt("cell", "<p>Gold: 24/7 support</p>"),
        ));
        assert_eq!(texts(&doc.excerpt("item").unwrap()), ["Ship on Friday."]);
        assert_eq!(texts(&doc.excerpt("cell").unwrap()), ["Gold: 24/7 support"]);
        assert!(doc.plain_text().contains("Ship on Friday.") && doc.plain_text().contains("Gold: 24/7 support"));
        let empty = convert(&format!("<ul><li>{}</li><li>Next</li></ul>", excerpt("none", "")));
        assert_eq!(texts(&empty), ["- Next"], "an empty excerpt leaves no empty item");
        assert_eq!(texts(&empty.excerpt("none").unwrap()), [""]);
    }

    #[test]
    fn spliced_content_goes_where_it_is_included_and_its_headings_end_there() {
        let mut doc = convert(
            "<h2>Setup</h2><p>Before.</p>\
             <ac:structured-macro ac:name=\"include\"><ac:parameter ac:name=\"\"><ac:link>\
             <ri:page ri:content-title=\"Shared\"/></ac:link></ac:parameter></ac:structured-macro>\
             <p>After.</p>\
             <ac:structured-macro ac:name=\"include\"><ac:parameter ac:name=\"\"><ac:link>\
             <ri:page ri:content-title=\"Missing\"/></ac:link></ac:parameter></ac:structured-macro>",
        );
        doc.splice(|inclusion| {
            (inclusion.target.title == "Shared").then(|| convert("<h3>Shared heading</h3><p>Shared text.</p>"))
        });
        assert_eq!(
            doc.blocks,
            [
                heading(2, "Setup"),
                text("Before."),
                heading(3, "Shared heading"),
                text("Shared text."),
                Block::SectionEnd { level: 3 },
                text("After."),
            ]
        );
        assert!(doc.inclusions.is_empty());
    }

    #[test]
    fn mentions_are_marked_for_naming_and_pages_cannot_forge_the_marks() {
        let mut doc = convert(
            "<p>Ask <ac:link><ri:user ri:account-id=\"557058:ab-12\" /></ac:link> or \
             <ac:link><ri:user ri:userkey=\"legacy\" /></ac:link>; not a\u{E000}forged\u{E001} or \
             b&#xE000;forged&#xE001; mark.</p>",
        );
        assert_eq!(doc.mentions(), ["557058:ab-12"]);
        doc.name_mentions(&HashMap::from([("557058:ab-12".to_string(), "Ada Lovelace".to_string())]));
        let text = doc.plain_text();
        assert!(text.starts_with("Ask @Ada Lovelace or @user; not aforged or b"), "{text}");
        assert!(!text.contains(['\u{E000}', '\u{E001}']), "{text:?}");
    }

    #[test]
    fn a_panel_title_stays_with_its_body_when_the_body_opens_with_a_heading() {
        let doc = convert(
            "<ac:structured-macro ac:name=\"note\"><ac:parameter ac:name=\"title\">Heads up</ac:parameter>\
             <ac:rich-text-body><h3>Inner</h3><p>body</p></ac:rich-text-body></ac:structured-macro>",
        );
        assert_eq!(doc.blocks, [heading(3, "Inner"), text("Heads up\nbody")]);
    }

    #[test]
    fn links_and_anchors() {
        let doc = convert(
            "<p><a href=\"https://a.example/x\">docs</a>, <a href=\"mailto:me@x.org\">me@x.org</a>, \
             <a href=\"#sec\">local</a>, <a href=\"https://b.example\"></a>, \
             <ac:link><ri:space ri:space-key=\"ENG\"/></ac:link>, \
             <ac:link><ri:page ri:content-title=\"T\"/><ac:link-body>rich <em>body</em></ac:link-body></ac:link></p>",
        );
        assert_eq!(doc.blocks, [text("docs, me@x.org, local, https://b.example , ENG, rich body")]);
    }

    // ---- robustness --------------------------------------------------------------------------

    #[test]
    fn empty_and_whitespace_input() {
        assert_eq!(convert(""), Converted::default());
        assert_eq!(convert("  \n\t "), Converted::default());
        assert_eq!(convert("<p></p><p />&nbsp;<div> </div>"), Converted::default());
        assert_eq!(convert("").plain_text(), "");
    }

    #[test]
    fn unclosed_and_mismatched_tags_keep_text() {
        assert_eq!(convert("<p>one <strong>bold").plain_text(), "one bold");
        assert_eq!(convert("<p>a</div>b</p><p>c").plain_text(), "ab\n\nc");
        assert_eq!(convert("<ul><li>x<li>y</ul><p>after").plain_text(), "- x\n- y\n\nafter");
        assert_eq!(convert("</p></x>text</y>").plain_text(), "text");
        assert_eq!(convert("<h2>Title<p>body</p>").blocks, [heading(2, "Title body")]);
        assert_eq!(convert("<p>x</p><br>y</br><hr>z").plain_text(), "x\n\ny\n\nz");
    }

    #[test]
    fn stray_lt_and_amp_are_text() {
        assert_eq!(
            convert("<p>a < b and 1<2 and x<y, <b>bold</b> & AT&T; c&d; R&D</p>").plain_text(),
            "a < b and 1<2 and x<y, bold & AT&T; c&d; R&D"
        );
        assert_eq!(convert("x < y").plain_text(), "x < y");
        assert_eq!(convert("tail <").plain_text(), "tail <");
        assert_eq!(convert("a & b &").plain_text(), "a & b &");
        assert_eq!(convert("<p>if a<b && c>d</p>").plain_text(), "if a<b && c>d");
    }

    #[test]
    fn entities_named_numeric_unknown() {
        assert_eq!(
            convert("&nbsp;&auml;&deg;&mdash;&#xE4;&#228;&#128231;&quot;&lt;&gt;&amp;&apos;&Eacute;").plain_text(),
            "ä°—ää📧\"<>&'É"
        );
        assert_eq!(convert("&foo; &#0; &#x110000; &bogus").plain_text(), "&foo; &#0; &#x110000; &bogus");
        // Entities in attributes are decoded too.
        assert_eq!(
            convert("<ac:image ac:alt=\"Caf&eacute; &amp; &quot;bar&quot; &zzz;\"><ri:url ri:value=\"x\"/></ac:image>")
                .plain_text(),
            "Café & \"bar\" &zzz;"
        );
        assert_eq!(unescape("a&b &amp;&lt x&#x41;"), "a&b &&lt xA");
    }

    #[test]
    fn cdata_split_comments_and_broken_markup() {
        assert_eq!(convert("<p><![CDATA[a]]]]><![CDATA[>b <not a tag>]]></p>").plain_text(), "a]]>b <not a tag>");
        assert_eq!(convert("<p>x<![CDATA[unterminated").plain_text(), "x<![CDATA[unterminated");
        assert_eq!(convert("<p>x<!-- unterminated comment").plain_text(), "x<!-- unterminated comment");
        assert_eq!(convert("<p>a<!-- c -->b<?pi x?>c<!DOCTYPE html>d</p>").plain_text(), "abcd");
        assert_eq!(convert("<p>x<?pi unterminated").plain_text(), "x<?pi unterminated");
        assert_eq!(convert("<p title=\"unbalanced>text</p>").plain_text(), "<p title=\"unbalanced>text");
        assert_eq!(convert("<p>ok</p><!x>").plain_text(), "ok\n\n<!x>");
    }

    #[test]
    fn non_ascii_text() {
        let doc = convert("<h1>Überblick — 概要</h1><p>Grüße, 你好, привет, 🎉 emoji&nbsp;&#x1F600;</p>");
        assert_eq!(doc.blocks, [heading(1, "Überblick — 概要"), text("Grüße, 你好, привет, 🎉 emoji 😀")]);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        const DEPTH: usize = 100_000;
        // Every kind of frame, side stack and capture, nested 100 000 elements deep.
        let cycle = [
            "<div>",
            "<ul>",
            "<li>",
            "<table>",
            "<tr>",
            "<td>",
            "<a href=\"u\">",
            "<ac:link>",
            "<ac:structured-macro ac:name=\"panel\">",
            "<ac:rich-text-body>",
            "<ac:task-list>",
            "<ac:task>",
            "<ac:task-body>",
            "<h2>",
            "<pre>",
            "<ac:adf-extension>",
            "<ac:adf-fallback>",
            "<span>",
        ];
        let mut s = String::new();
        for i in 0..DEPTH {
            s.push_str(cycle[i % cycle.len()]);
        }
        s.push_str("deep text");
        assert!(convert(&s).plain_text().contains("deep text"));
        s.push_str(&"</x></div></li></td></a>".repeat(DEPTH / 4));
        s.push_str("<p>after</p>");
        let doc = convert(&s);
        assert!(doc.plain_text().contains("deep text"));
        assert!(doc.plain_text().contains("after"));

        let lists = format!("{}deep item", "<ul><li>".repeat(DEPTH));
        let doc = convert(&lists);
        assert!(doc.plain_text().ends_with("deep item"));
        assert!(doc.plain_text().len() < 100, "indentation is capped");
    }

    #[test]
    fn byte_order_marks_before_stray_markup_are_skipped() {
        // Found by the storage_convert fuzz target: quick-xml skips a leading byte-order
        // mark, so re-reading after a stray `&` or `<` landed inside it and panicked.
        assert_eq!(convert("\u{feff}&;").plain_text(), "&;");
        assert_eq!(convert("\u{feff}<1a>x").plain_text(), "<1a>x");
        assert_eq!(convert("a&\u{feff}<1b>&;").plain_text(), "a&\u{feff}<1b>&;", "mid-text it is text");
        assert_eq!(convert("<p>\u{feff}</p>").plain_text(), "\u{feff}");
    }

    #[test]
    fn truncated_and_mutated_inputs_never_panic() {
        let src = fixture("constructs.xml");
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for cut in (0..=src.len()).step_by(13).filter(|&i| src.is_char_boundary(i)) {
            let _ = convert(&src[..cut]);
            // Replace one ASCII byte with a markup-significant one.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = src.as_bytes().to_vec();
            let i = (seed as usize) % bytes.len();
            if bytes[i].is_ascii() {
                bytes[i] = b"<>&;\"'/]!"[(seed >> 32) as usize % 9];
            }
            if let Ok(mutated) = String::from_utf8(bytes) {
                let _ = convert(&mutated);
            }
        }
    }

    #[test]
    fn twenty_megabytes_in_linear_time() {
        let unit = fixture("constructs.xml");
        let mut big = String::with_capacity(20_000_000 + unit.len());
        while big.len() < 20_000_000 {
            big.push_str(&unit);
        }
        let copies = big.len() / unit.len();
        let start = std::time::Instant::now();
        let doc = convert(&big);
        let elapsed = start.elapsed();
        let one = convert(&unit).blocks.len();
        assert_eq!(doc.blocks.len(), one * copies);
        if !cfg!(debug_assertions) {
            assert!(elapsed.as_secs_f64() < 3.0, "20 MB took {elapsed:?}");
        }
    }
}
