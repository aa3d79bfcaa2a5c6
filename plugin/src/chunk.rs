//! Section-aware chunking of a [`Converted`] page.
//!
//! Every heading starts a new section; a chunk never spans two sections, so each chunk can be
//! cited with its own heading path (e.g. `["Install", "Linux"]`, usable for a `#heading` deep
//! link). A heading whose section has no text stays in the path of the headings below it; a
//! heading that heads no text at all (the next heading is of the same or a higher level, or
//! the page ends, or only generated macros were under it) becomes a chunk of its own title, so
//! that no heading is lost. Text before the first heading gets an empty path.
//!
//! Within a section, blocks are packed greedily up to [`ChunkConfig::target_chars`] (joined by
//! blank lines). A section that is too long is split at block boundaries first, then a block that
//! is itself too long at line boundaries, then at sentence boundaries, and as a last resort at
//! [`ChunkConfig::max_chars`] (preferring a space, always on a character boundary). No chunk
//! exceeds `max_chars` characters; text is not lost — only the whitespace at a split point is
//! dropped — and duplicated only where a split would cut context off: a table's header row
//! starts every later chunk of the table, and a code block split across chunks is closed at
//! the end of each and reopened (with its language) at the start of the next. Heading titles
//! are *not* repeated in [`Chunk::text`] (except in a heading's own chunk); they are in
//! [`Chunk::headings`].
//!
//! Lengths are counted in Unicode scalar values (`char`s), not bytes.
//!
//! ```
//! use confluence_connector::chunk::{ChunkConfig, chunk};
//! use confluence_connector::storage::convert;
//! let doc = convert("<h1>Install</h1><h2>Linux</h2><p>Run make.</p>");
//! let chunks = chunk(&doc, &ChunkConfig::default());
//! assert_eq!(chunks[0].headings, ["Install", "Linux"]);
//! assert_eq!(chunks[0].text, "Run make.");
//! ```

use connector_sdk::caps::IndexChunk;

use crate::storage::{self, Block, Converted};

/// One retrievable piece of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Heading path of the section the chunk belongs to, outermost first
    /// (e.g. `["Install", "Linux"]`); empty for content before the first heading.
    pub headings: Vec<String>,
    /// The chunk text (blocks separated by blank lines); never empty, at most
    /// [`ChunkConfig::max_chars`] characters.
    pub text: String,
}

/// Size limits for [`chunk`], in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Preferred chunk size: blocks are packed into a chunk while it stays within this size
    /// (clamped to `1..=max_chars`).
    pub target_chars: usize,
    /// Hard upper bound for a chunk (at least 1).
    pub max_chars: usize,
}

impl Default for ChunkConfig {
    /// `target_chars: 1200`, `max_chars: 2000`.
    fn default() -> Self {
        ChunkConfig { target_chars: 1200, max_chars: 2000 }
    }
}

/// The chunks of a page as they are indexed: its storage-format body converted and split,
/// each carrying the page title and its heading path (`Install › Linux`); a page without
/// text is one chunk of its title, so it stays findable. Mentions read `@user`; the engine
/// names them (see [`converted_chunks`]).
pub fn page_chunks(storage_body: &str, title: &str, cfg: &ChunkConfig) -> Vec<IndexChunk> {
    let mut doc = storage::convert(storage_body);
    doc.name_mentions(&Default::default());
    converted_chunks(&doc, title, cfg)
}

/// [`page_chunks`] of a page already converted (and its mentions named).
pub fn converted_chunks(doc: &Converted, title: &str, cfg: &ChunkConfig) -> Vec<IndexChunk> {
    let mut chunks: Vec<IndexChunk> = chunk(doc, cfg)
        .into_iter()
        .enumerate()
        .map(|(ordinal, c)| IndexChunk {
            ordinal: ordinal as u32,
            title: title.to_owned(),
            heading: c.headings.join(" › "),
            text: c.text,
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(IndexChunk { ordinal: 0, title: title.to_owned(), heading: String::new(), text: title.to_owned() });
    }
    chunks
}

/// Splits a converted page into section-aware chunks; see the [module documentation](self).
pub fn chunk(doc: &Converted, cfg: &ChunkConfig) -> Vec<Chunk> {
    let max = cfg.max_chars.max(1);
    let limits = Limits { target: cfg.target_chars.clamp(1, max), max };
    let mut chunks = Vec::new();
    let mut path = Path::default();
    let mut section: Vec<&str> = Vec::new();
    for block in &doc.blocks {
        match block {
            Block::Heading { level, text } => {
                path.emit(&section, limits, &mut chunks);
                section.clear();
                path.leave_to(*level, limits, &mut chunks);
                path.headings.push(PathHeading { level: *level, title: text, cited: false });
            }
            Block::Text(text) => section.push(text),
            Block::SectionEnd { level } => {
                path.emit(&section, limits, &mut chunks);
                section.clear();
                path.leave_to(*level, limits, &mut chunks);
            }
        }
    }
    path.emit(&section, limits, &mut chunks);
    path.leave_to(0, limits, &mut chunks);
    chunks
}

/// The headings above the current section.
#[derive(Default)]
struct Path<'a> {
    headings: Vec<PathHeading<'a>>,
}

struct PathHeading<'a> {
    level: u8,
    title: &'a str,
    /// Whether a chunk carries this heading in its path yet.
    cited: bool,
}

impl Path<'_> {
    fn titles(&self) -> Vec<String> {
        self.headings.iter().map(|h| h.title.to_owned()).collect()
    }

    /// Emits a section's chunks under the current path.
    fn emit(&mut self, blocks: &[&str], limits: Limits, out: &mut Vec<Chunk>) {
        let before = out.len();
        emit_section(&self.titles(), blocks, limits, out);
        if out.len() > before {
            self.headings.iter_mut().for_each(|h| h.cited = true);
        }
    }

    /// Leaves every heading of `level` or deeper; one that no chunk cites becomes a chunk
    /// of its own title (cut to the chunk limit).
    fn leave_to(&mut self, level: u8, limits: Limits, out: &mut Vec<Chunk>) {
        while self.headings.last().is_some_and(|h| h.level >= level) {
            let Some(last) = self.headings.last() else { break };
            if !last.cited {
                let text: String = last.title.chars().take(limits.max).collect();
                out.push(Chunk { headings: self.titles(), text });
                self.headings.iter_mut().for_each(|h| h.cited = true);
            }
            self.headings.pop();
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    target: usize,
    max: usize,
}

/// A piece of text that is never split further, with the separator that preceded it in the
/// original text (dropped when the atom starts a chunk).
struct Atom<'a> {
    sep: &'a str,
    text: &'a str,
    len: usize,
    /// For a line inside a table or code block: what a chunk starting with it needs first.
    context: Option<Context<'a>>,
    /// The line ends its code block (the closing fence).
    closes: bool,
}

impl<'a> Atom<'a> {
    fn new(sep: &'a str, text: &'a str, len: usize) -> Atom<'a> {
        Atom { sep, text, len, context: None, closes: false }
    }
}

/// The lines a split table or code block repeats around a chunk boundary.
#[derive(Clone, Copy)]
struct Context<'a> {
    /// The table's header row, or the code block's opening fence (with its language).
    open: &'a str,
    /// The code block's closing fence.
    close: Option<&'a str>,
}

/// Where the table starts in a block that is a table as [`crate::storage`] writes one (a
/// row per line, cells joined by ` | `, the header row first), after at most two lines of
/// a panel's label or a title: the header row's line.
fn table_header(lines: &[&str]) -> Option<usize> {
    (0..=2.min(lines.len().saturating_sub(2))).find(|&h| lines[h..].iter().all(|l| l.contains(" | ")))
}

/// The opening and closing fence lines of a block holding a fenced code block (possibly
/// after its label and title lines): their line numbers.
fn code_fences(lines: &[&str]) -> Option<(usize, usize)> {
    let open = lines.iter().position(|l| l.starts_with("```"))?;
    let fence: &str = &lines[open][..lines[open].chars().take_while(|&c| c == '`').count()];
    let close = lines.len() - 1;
    (close > open && lines[close] == fence).then_some((open, close))
}

fn emit_section(headings: &[String], blocks: &[&str], limits: Limits, out: &mut Vec<Chunk>) {
    let mut atoms = Vec::new();
    for block in blocks {
        split_block(block, limits, &mut atoms);
    }
    if atoms.is_empty() {
        return;
    }
    let mut cur = String::new();
    let mut cur_len = 0usize;
    // The context of the last atom taken, while it is inside a table or code block.
    let mut open: Option<Context<'_>> = None;
    for atom in atoms {
        let sep_len = atom.sep.chars().count();
        if cur_len > 0 && cur_len + sep_len + atom.len > limits.target {
            if let Some(close) = open.and_then(|c| c.close) {
                let close_len = close.chars().count();
                if cur_len + 1 + close_len <= limits.max {
                    cur.push('\n');
                    cur.push_str(close);
                }
            }
            push_chunk(headings, &mut cur, out);
            cur_len = 0;
        }
        if cur_len == 0
            && let Some(context) = atom.context
        {
            let open_len = context.open.chars().count();
            if open_len + 1 + atom.len <= limits.max {
                cur.push_str(context.open);
                cur_len = open_len;
                cur.push('\n');
                cur_len += 1;
            }
        } else if cur_len > 0 {
            cur.push_str(atom.sep);
            cur_len += sep_len;
        }
        cur.push_str(atom.text);
        cur_len += atom.len;
        open = atom.context.filter(|_| !atom.closes);
    }
    push_chunk(headings, &mut cur, out);
}

fn push_chunk(headings: &[String], cur: &mut String, out: &mut Vec<Chunk>) {
    let text = cur.trim_end().trim_start_matches(['\n', '\r']);
    if !text.is_empty() {
        out.push(Chunk { headings: headings.to_vec(), text: text.to_owned() });
    }
    cur.clear();
}

/// Splits one block into atoms: whole if it fits the target, else by lines, then sentences,
/// then hard at `max`.
fn split_block<'a>(block: &'a str, limits: Limits, atoms: &mut Vec<Atom<'a>>) {
    let len = block.chars().count();
    if len == 0 {
        return;
    }
    if len <= limits.target {
        atoms.push(Atom::new("\n\n", block, len));
        return;
    }
    let lines: Vec<&'a str> = block.split('\n').collect();
    let header = if lines.len() > 1 { table_header(&lines) } else { None };
    let fences = code_fences(&lines);
    for (i, &line) in lines.iter().enumerate() {
        let sep = if i == 0 { "\n\n" } else { "\n" };
        let line_len = line.chars().count();
        let (context, closes) = match (header, fences) {
            (Some(h), _) if i > h => (Some(Context { open: lines[h], close: None }), false),
            (_, Some((open, close))) if i > open => {
                (Some(Context { open: lines[open], close: Some(lines[close]) }), i == close)
            }
            _ => (None, false),
        };
        if line_len <= limits.target {
            atoms.push(Atom { sep, text: line, len: line_len, context, closes });
            continue;
        }
        let mut sep = sep;
        for (sentence_sep, sentence) in sentences(line) {
            // The separator before the first sentence is the line separator.
            let s_sep = if sentence_sep.is_empty() { sep } else { sentence_sep };
            sep = "";
            hard_split(s_sep, sentence, limits.max, atoms);
        }
    }
}

/// Sentences of `line` with the whitespace that preceded each (empty for the first).
fn sentences(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut sep: &str = "";
    let mut iter = line.char_indices().peekable();
    while let Some((i, ch)) = iter.next() {
        if !matches!(ch, '.' | '!' | '?' | '…' | '。' | '！' | '？' | ';') {
            continue;
        }
        let end = i + ch.len_utf8();
        let Some(&(_, next)) = iter.peek() else { break };
        if !next.is_whitespace() {
            continue;
        }
        // Consume the whitespace run.
        let mut ws_end = end;
        while let Some(&(j, c)) = iter.peek() {
            if !c.is_whitespace() {
                break;
            }
            ws_end = j + c.len_utf8();
            iter.next();
        }
        out.push((sep, &line[start..end]));
        sep = &line[end..ws_end];
        start = ws_end;
    }
    if start < line.len() {
        out.push((sep, &line[start..]));
    }
    out
}

/// Pushes `piece` as atoms of at most `max` chars, preferring to cut at whitespace in the
/// second half of the window.
fn hard_split<'a>(sep: &'a str, piece: &'a str, max: usize, atoms: &mut Vec<Atom<'a>>) {
    let mut sep = sep;
    let mut rest = piece;
    loop {
        let Some((cut, _)) = rest.char_indices().nth(max) else {
            let len = rest.chars().count();
            if len > 0 {
                atoms.push(Atom::new(sep, rest, len));
            }
            return;
        };
        let window = &rest[..cut];
        let ws = window
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .filter(|&i| window[..i].chars().count() >= max / 2 && i > 0);
        match ws {
            Some(i) => {
                let head = &rest[..i];
                let ws_end = rest[i..]
                    .char_indices()
                    .find(|(_, c)| !c.is_whitespace())
                    .map(|(j, _)| i + j)
                    .unwrap_or(rest.len());
                atoms.push(Atom::new(sep, head, head.chars().count()));
                sep = &rest[i..ws_end];
                rest = &rest[ws_end..];
            }
            None => {
                atoms.push(Atom::new(sep, window, max));
                sep = "";
                rest = &rest[cut..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::convert;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/storage/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn doc(blocks: Vec<Block>) -> Converted {
        Converted { blocks, ..Converted::default() }
    }

    fn h(level: u8, t: &str) -> Block {
        Block::Heading { level, text: t.to_owned() }
    }

    fn t(s: &str) -> Block {
        Block::Text(s.to_owned())
    }

    fn paths(chunks: &[Chunk]) -> Vec<(Vec<&str>, &str)> {
        chunks.iter().map(|c| (c.headings.iter().map(String::as_str).collect(), c.text.as_str())).collect()
    }

    /// Every word of every text block appears in the chunk texts at least as often, no
    /// chunk exceeds `max_chars`, and the only extra words are repeated context (a table's
    /// header row, a code fence) or the title of a heading that heads no text.
    fn assert_lossless(d: &Converted, chunks: &[Chunk], cfg: &ChunkConfig) {
        for c in chunks {
            assert!(c.text.chars().count() <= cfg.max_chars, "chunk too long: {}", c.text.len());
            assert!(!c.text.trim().is_empty());
        }
        let mut want: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        let mut context: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for block in &d.blocks {
            match block {
                Block::Text(s) => {
                    s.split_whitespace().for_each(|w| *want.entry(w).or_default() += 1);
                    let lines: Vec<&str> = s.split('\n').collect();
                    if let Some(h) = table_header(&lines).filter(|_| lines.len() > 1) {
                        context.extend(lines[h].split_whitespace());
                    }
                    context.extend(lines.iter().filter(|l| l.starts_with("```")).flat_map(|l| l.split_whitespace()));
                }
                Block::Heading { text, .. } => context.extend(text.split_whitespace()),
                Block::SectionEnd { .. } => {}
            }
        }
        for word in chunks.iter().flat_map(|c| c.text.split_whitespace()) {
            *want.entry(word).or_default() -= 1;
        }
        for (word, missing) in want {
            assert!(missing <= 0, "{word:?} lost {missing} times");
            assert!(missing == 0 || context.contains(word), "{word:?} added {} times", -missing);
        }
    }

    #[test]
    fn heading_path_pops_back_and_sections_stay_separate() {
        let d = doc(vec![
            t("preamble"),
            h(1, "Install"),
            h(2, "Linux"),
            t("apt install"),
            h(3, "Debian"),
            t("deb notes"),
            h(2, "Windows"),
            t("run setup.exe"),
            h(1, "Usage"),
            t("just use it"),
        ]);
        let chunks = chunk(&d, &ChunkConfig::default());
        assert_eq!(
            paths(&chunks),
            [
                (vec![], "preamble"),
                // "Install" has no text of its own: no chunk, but it stays in the path.
                (vec!["Install", "Linux"], "apt install"),
                (vec!["Install", "Linux", "Debian"], "deb notes"),
                (vec!["Install", "Windows"], "run setup.exe"),
                (vec!["Usage"], "just use it"),
            ]
        );
    }

    #[test]
    fn skipped_levels_and_trailing_empty_heading() {
        let d = doc(vec![h(3, "Deep first"), t("a"), h(1, "Top"), h(4, "Four"), t("b"), h(2, "Empty end")]);
        assert_eq!(
            paths(&chunk(&d, &ChunkConfig::default())),
            [(vec!["Deep first"], "a"), (vec!["Top", "Four"], "b"), (vec!["Top", "Empty end"], "Empty end")]
        );
    }

    #[test]
    fn a_heading_over_no_text_is_a_chunk_of_its_title() {
        // Sections like `details` pages: headings with nothing under them but more headings.
        let d =
            doc(vec![h(1, "Owner"), h(1, "Status"), h(2, "Due date"), t("Friday"), h(2, "Reviewers"), h(1, "Links")]);
        assert_eq!(
            paths(&chunk(&d, &ChunkConfig::default())),
            [
                (vec!["Owner"], "Owner"),
                (vec!["Status", "Due date"], "Friday"),
                (vec!["Status", "Reviewers"], "Reviewers"),
                (vec!["Links"], "Links"),
            ]
        );
    }

    #[test]
    fn a_split_table_repeats_its_header_row() {
        let rows: Vec<String> = (0..40).map(|i| format!("feature {i} | supported | owner{i}")).collect();
        let table = format!("Feature | Status | Owner\n{}", rows.join("\n"));
        let d = doc(vec![h(1, "Matrix"), t(&table)]);
        let cfg = ChunkConfig { target_chars: 200, max_chars: 300 };
        let chunks = chunk(&d, &cfg);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(c.text.starts_with("Feature | Status | Owner\n"), "{}", c.text);
        }
        assert_lossless(&d, &chunks, &cfg);
    }

    #[test]
    fn a_split_table_in_a_panel_repeats_its_header_row_not_the_panel_title() {
        let rows: Vec<String> = (0..40).map(|i| format!("v{i} | ok")).collect();
        let block = format!("Versions\nVersion | State\n{}", rows.join("\n"));
        let d = doc(vec![t(&block)]);
        let cfg = ChunkConfig { target_chars: 120, max_chars: 200 };
        let chunks = chunk(&d, &cfg);
        assert!(chunks.len() > 2);
        assert!(chunks[0].text.starts_with("Versions\nVersion | State\n"), "{}", chunks[0].text);
        for c in &chunks[1..] {
            assert!(c.text.starts_with("Version | State\nv"), "{}", c.text);
        }
        assert_lossless(&d, &chunks, &cfg);
    }

    #[test]
    fn a_split_code_block_is_closed_and_reopened_with_its_language() {
        let code: Vec<String> = (0..60).map(|i| format!("let value_{i} = compute({i});")).collect();
        let block = format!("Setup script\n```rust\n{}\n```", code.join("\n"));
        let d = doc(vec![t(&block)]);
        let cfg = ChunkConfig { target_chars: 300, max_chars: 400 };
        let chunks = chunk(&d, &cfg);
        assert!(chunks.len() > 3);
        assert!(chunks[0].text.starts_with("Setup script\n```rust\n"), "{}", chunks[0].text);
        for c in &chunks {
            assert_eq!(c.text.matches("```").count(), 2, "every chunk holds a whole fenced block: {}", c.text);
            assert!(c.text.ends_with("\n```"), "{}", c.text);
        }
        for c in &chunks[1..] {
            assert!(c.text.starts_with("```rust\n"), "{}", c.text);
        }
        assert_lossless(&d, &chunks, &cfg);
    }

    #[test]
    fn small_blocks_pack_up_to_target_and_split_at_block_boundaries() {
        let cfg = ChunkConfig { target_chars: 25, max_chars: 40 };
        let d = doc(vec![h(1, "S"), t("aaaa aaaa"), t("bbbb bbbb"), t("cccc cccc"), t("dddd")]);
        let chunks = chunk(&d, &cfg);
        assert_eq!(paths(&chunks), [(vec!["S"], "aaaa aaaa\n\nbbbb bbbb"), (vec!["S"], "cccc cccc\n\ndddd")]);
        assert_lossless(&d, &chunks, &cfg);
    }

    #[test]
    fn long_blocks_split_by_lines_then_sentences_then_spaces() {
        let cfg = ChunkConfig { target_chars: 30, max_chars: 40 };
        let list = "- first item here\n- second item here\n- third item here";
        let para = "One short sentence. Another short sentence! A third one? Yes.";
        let salad = "word ".repeat(30);
        let d = doc(vec![t(list), t(para), t(salad.trim())]);
        let chunks = chunk(&d, &cfg);
        assert_lossless(&d, &chunks, &cfg);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts[..5],
            [
                "- first item here",
                "- second item here",
                "- third item here",
                "One short sentence.",
                "Another short sentence!",
            ]
        );
        assert_eq!(texts[5], "A third one? Yes.");
        // No punctuation: cut at a space, never inside a word.
        let words = &texts[6..];
        assert!(words.len() >= 4);
        assert!(words.iter().all(|c| c.split(' ').all(|w| w == "word")));
    }

    #[test]
    fn unbreakable_token_is_hard_split_on_char_boundaries() {
        let cfg = ChunkConfig { target_chars: 30, max_chars: 40 };
        let token = "ä€😀".repeat(30);
        let chunks = chunk(&doc(vec![t(&token)]), &cfg);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= 40));
        assert_eq!(chunks.iter().map(|c| c.text.as_str()).collect::<String>(), token);
    }

    #[test]
    fn config_is_clamped() {
        let d = doc(vec![t("abc def")]);
        let tiny = chunk(&d, &ChunkConfig { target_chars: 0, max_chars: 0 });
        assert!(tiny.iter().all(|c| c.text.chars().count() == 1));
        assert_eq!(tiny.iter().map(|c| c.text.as_str()).collect::<String>(), "abcdef");
        let inverted = chunk(&d, &ChunkConfig { target_chars: 100, max_chars: 4 });
        assert!(inverted.iter().all(|c| c.text.chars().count() <= 4));
        assert_eq!(ChunkConfig::default(), ChunkConfig { target_chars: 1200, max_chars: 2000 });
        assert!(chunk(&Converted::default(), &ChunkConfig::default()).is_empty());
    }

    #[test]
    fn real_pages_chunk_losslessly() {
        for name in [
            "constructs.xml",
            "airbyte-cloud-personal-overview-98487.xml",
            "md2conf-images.xml",
            "md2conf-panel.xml",
            "md2conf-tasklist.xml",
        ] {
            let d = convert(&fixture(name));
            for cfg in [ChunkConfig::default(), ChunkConfig { target_chars: 60, max_chars: 90 }] {
                let chunks = chunk(&d, &cfg);
                assert_lossless(&d, &chunks, &cfg);
            }
        }
        let d = convert(&fixture("constructs.xml"));
        let chunks = chunk(&d, &ChunkConfig::default());
        let cited: Vec<Vec<&str>> = chunks.iter().map(|c| c.headings.iter().map(String::as_str).collect()).collect();
        assert_eq!(
            cited,
            [
                vec![],
                vec!["Install", "Linux"],
                vec!["Install", "Linux", "Notes"],
                vec!["Install", "Windows"],
                vec!["Reference"],
                vec!["Reference", "Empty heading section", "Child of empty"],
            ]
        );
        assert!(chunks[3].text.starts_with("Version | Status | Owner"));
    }

    #[test]
    fn large_section_respects_limits() {
        let mut body = String::new();
        for i in 0..2000 {
            body.push_str(&format!("<p>Paragraph {i} has a few words. And a second sentence {i}.</p>"));
        }
        body.push_str(&format!("<pre>{}</pre>", "let x = 1;\n".repeat(500)));
        let d = convert(&format!("<h1>Big</h1>{body}"));
        let cfg = ChunkConfig::default();
        let chunks = chunk(&d, &cfg);
        assert!(chunks.len() > 50);
        assert!(chunks.iter().all(|c| c.headings == ["Big"]));
        assert_lossless(&d, &chunks, &cfg);
    }
}
