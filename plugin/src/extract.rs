//! The text of an attached file, extracted in the component (no OCR, no external service):
//! plain text, Markdown, CSV/TSV, JSON, XML, HTML, PDF (its text layer), DOCX, PPTX and XLSX.
//! The result is storage-format XHTML (paragraphs, a heading per slide or sheet, table rows
//! as `a | b | c` lines), so that attachments go through the same conversion and chunking as
//! pages. A file that cannot be read says why ([`Skip`]); nothing here panics on bad input.

use std::io::{Cursor, Read};

use quick_xml::events::Event;

/// Why an attachment is not indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Over the size limit (bytes of the file, or characters of its text).
    TooLarge,
    /// Encrypted (a password-protected PDF or Office file).
    Encrypted,
    /// Corrupt or not what its name says.
    Unreadable,
    /// A type without text to extract here (images, video, archives, ...).
    OtherType,
    /// The host refused the download (the media service's origin is not granted).
    Refused,
}

impl Skip {
    /// How `status` names the reason.
    pub fn label(self) -> &'static str {
        match self {
            Skip::TooLarge => "attachments skipped: too large",
            Skip::Encrypted => "attachments skipped: encrypted",
            Skip::Unreadable => "attachments skipped: unreadable",
            Skip::OtherType => "attachments skipped: other type",
            Skip::Refused => "attachments skipped: download refused by the host",
        }
    }
}

/// The kinds of file whose text is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, Markdown, logs, YAML: paragraphs as written.
    Text,
    /// Comma- or tab-separated values.
    Delimited(u8),
    /// JSON: kept as text.
    Json,
    /// XML: its text content.
    Xml,
    /// HTML: converted like a page.
    Html,
    /// PDF: its text layer.
    Pdf,
    /// Word.
    Docx,
    /// PowerPoint.
    Pptx,
    /// Excel.
    Xlsx,
}

/// The format of a file, from its name and its media type; `None` for other types.
pub fn format_of(file_name: &str, media_type: &str) -> Option<Format> {
    let extension = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let media = media_type.to_ascii_lowercase();
    Some(match (extension.as_str(), media.as_str()) {
        ("txt" | "text" | "md" | "markdown" | "log" | "yaml" | "yml" | "conf" | "ini", _) => Format::Text,
        ("csv", _) | (_, "text/csv") => Format::Delimited(b','),
        ("tsv", _) | (_, "text/tab-separated-values") => Format::Delimited(b'\t'),
        ("json", _) | (_, "application/json") => Format::Json,
        ("xml", _) | (_, "application/xml" | "text/xml") => Format::Xml,
        ("html" | "htm", _) | (_, "text/html") => Format::Html,
        ("pdf", _) | (_, "application/pdf") => Format::Pdf,
        ("docx", _) | (_, "application/vnd.openxmlformats-officedocument.wordprocessingml.document") => Format::Docx,
        ("pptx", _) | (_, "application/vnd.openxmlformats-officedocument.presentationml.presentation") => Format::Pptx,
        ("xlsx", _) | (_, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") => Format::Xlsx,
        (_, media) if media.starts_with("text/plain") || media == "text/markdown" => Format::Text,
        _ => return None,
    })
}

/// Largest decompressed stream a PDF or an Office file may unpack to: a small file that
/// inflates without end is corrupt, not content.
const MAX_INFLATED_BYTES: usize = 256 << 20;

/// The file's text as storage-format XHTML, at most `max_chars` characters of text.
pub fn extract(format: Format, bytes: &[u8], max_chars: usize) -> Result<String, Skip> {
    let blocks = match format {
        Format::Text | Format::Json => text_blocks(&decode_text(bytes)),
        Format::Delimited(separator) => delimited_blocks(&decode_text(bytes), separator),
        Format::Xml => vec![Block::Paragraph(xml_text(bytes, &[]).map_err(|_| Skip::Unreadable)?.join("\n"))],
        Format::Html => return html(bytes, max_chars),
        Format::Pdf => pdf_blocks(bytes)?,
        Format::Docx => docx_blocks(bytes)?,
        Format::Pptx => pptx_blocks(bytes)?,
        Format::Xlsx => xlsx_blocks(bytes)?,
    };
    let chars: usize = blocks.iter().map(Block::chars).sum();
    if chars > max_chars {
        return Err(Skip::TooLarge);
    }
    Ok(blocks.iter().map(Block::xhtml).collect())
}

/// A piece of extracted text.
enum Block {
    Heading(String),
    Paragraph(String),
}

impl Block {
    fn chars(&self) -> usize {
        match self {
            Block::Heading(text) | Block::Paragraph(text) => text.chars().count(),
        }
    }

    fn xhtml(&self) -> String {
        match self {
            Block::Heading(text) => format!("<h2>{}</h2>", escape(text)),
            // Line breaks inside a paragraph stay lines (table rows, code, lists).
            Block::Paragraph(text) => format!("<p>{}</p>", escape(text).replace('\n', "<br/>")),
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// UTF-8 (with or without a byte-order mark), else Latin-1: text files come from anywhere.
fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Paragraphs separated by blank lines; Markdown headings (`# Title`) become headings.
fn text_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for paragraph in text.replace("\r\n", "\n").split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        match paragraph.strip_prefix('#').filter(|_| !paragraph.contains('\n')) {
            Some(heading) => blocks.push(Block::Heading(heading.trim_start_matches('#').trim().to_string())),
            None => blocks.push(Block::Paragraph(paragraph.to_string())),
        }
    }
    blocks
}

/// Rows as `a | b | c` lines, a paragraph per 50 rows so that a long table splits into
/// passages; quoted fields may hold separators and doubled quotes.
fn delimited_blocks(text: &str, separator: u8) -> Vec<Block> {
    let rows: Vec<String> = text
        .lines()
        .map(|line| split_fields(line, separator as char).join(" | "))
        .filter(|row| !row.trim().is_empty())
        .collect();
    rows.chunks(50).map(|rows| Block::Paragraph(rows.join("\n"))).collect()
}

fn split_fields(line: &str, separator: char) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == separator && !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// The text of an XML document, a string per element whose name ends in one of
/// `paragraphs` (all text in one string when none is given).
fn xml_text(bytes: &[u8], paragraphs: &[&str]) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().check_end_names = false;
    let mut out = Vec::new();
    let mut current = String::new();
    let mut buffer = Vec::new();
    let ends_paragraph = |name: &[u8]| paragraphs.iter().any(|p| name.ends_with(p.as_bytes()));
    loop {
        match reader.read_event_into(&mut buffer)? {
            Event::Text(text) => {
                let decoded = text.decode().map_err(quick_xml::Error::from)?;
                let unescaped = quick_xml::escape::unescape(&decoded).map(|t| t.into_owned()).unwrap_or(decoded.into());
                if !current.is_empty() && paragraphs.is_empty() {
                    current.push(' ');
                }
                current.push_str(unescaped.trim_matches('\n'));
            }
            Event::CData(text) => current.push_str(&String::from_utf8_lossy(&text)),
            Event::End(end) if ends_paragraph(end.name().as_ref()) => {
                let text = std::mem::take(&mut current);
                if !text.trim().is_empty() {
                    out.push(text.trim().to_string());
                }
            }
            Event::Empty(tag) if tag.name().as_ref().ends_with(b":tab") => current.push('\t'),
            Event::Empty(tag) if tag.name().as_ref().ends_with(b":br") => current.push('\n'),
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    Ok(out)
}

/// HTML goes through the page converter, which reads tag soup leniently.
fn html(bytes: &[u8], max_chars: usize) -> Result<String, Skip> {
    let text = decode_text(bytes);
    let body = match (text.find("<body"), text.rfind("</body>")) {
        (Some(start), Some(end)) if start < end => {
            let open_end = text[start..].find('>').map_or(start, |i| start + i + 1);
            &text[open_end..end]
        }
        _ => text.as_str(),
    };
    let chars = crate::storage::convert(body).blocks.iter().map(|b| b.text().chars().count()).sum::<usize>();
    if chars > max_chars {
        return Err(Skip::TooLarge);
    }
    Ok(body.to_string())
}

fn pdf_blocks(bytes: &[u8]) -> Result<Vec<Block>, Skip> {
    let encrypted = bytes.windows(8).any(|w| w == b"/Encrypt");
    let document = match lopdf::Document::load_mem(bytes) {
        Ok(document) => document,
        Err(_) if encrypted => return Err(Skip::Encrypted),
        Err(_) => return Err(Skip::Unreadable),
    };
    let mut blocks = Vec::new();
    for (number, _) in document.get_pages() {
        match document.extract_text_with_limit(&[number], MAX_INFLATED_BYTES) {
            Ok(text) => blocks.extend(text_blocks(&text.replace('\n', "\n\n"))),
            Err(_) if encrypted => return Err(Skip::Encrypted),
            Err(_) => return Err(Skip::Unreadable),
        }
    }
    Ok(blocks)
}

/// An Office file's parts. Encrypted Office files are not zip archives but OLE containers.
fn archive(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, Skip> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(Skip::Encrypted);
    }
    zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| Skip::Unreadable)
}

fn part(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str) -> Result<Option<Vec<u8>>, Skip> {
    let mut file = match archive.by_name(name) {
        Ok(file) => file,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(_) => return Err(Skip::Unreadable),
    };
    let mut bytes = Vec::new();
    (&mut file).take(MAX_INFLATED_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|_| Skip::Unreadable)?;
    if bytes.len() > MAX_INFLATED_BYTES {
        return Err(Skip::TooLarge);
    }
    Ok(Some(bytes))
}

fn docx_blocks(bytes: &[u8]) -> Result<Vec<Block>, Skip> {
    let mut archive = archive(bytes)?;
    let document = part(&mut archive, "word/document.xml")?.ok_or(Skip::Unreadable)?;
    let paragraphs = xml_text(&document, &["w:p"]).map_err(|_| Skip::Unreadable)?;
    Ok(paragraphs.into_iter().map(Block::Paragraph).collect())
}

/// Numbered parts (`ppt/slides/slide3.xml`, `xl/worksheets/sheet2.xml`) in their order.
fn numbered_parts(archive: &zip::ZipArchive<Cursor<&[u8]>>, prefix: &str) -> Vec<(u32, String)> {
    let mut parts: Vec<(u32, String)> = archive
        .file_names()
        .filter_map(|name| {
            let name = name.ok()?;
            let number = name.strip_prefix(prefix)?.strip_suffix(".xml")?.parse().ok()?;
            Some((number, name.to_string()))
        })
        .collect();
    parts.sort();
    parts
}

fn pptx_blocks(bytes: &[u8]) -> Result<Vec<Block>, Skip> {
    let mut archive = archive(bytes)?;
    let mut blocks = Vec::new();
    for (number, name) in numbered_parts(&archive, "ppt/slides/slide") {
        let slide = part(&mut archive, &name)?.ok_or(Skip::Unreadable)?;
        let paragraphs = xml_text(&slide, &["a:p"]).map_err(|_| Skip::Unreadable)?;
        blocks.push(Block::Heading(format!("Slide {number}")));
        blocks.push(Block::Paragraph(paragraphs.join("\n")));
    }
    Ok(blocks)
}

fn xlsx_blocks(bytes: &[u8]) -> Result<Vec<Block>, Skip> {
    let mut archive = archive(bytes)?;
    let shared: Vec<String> = match part(&mut archive, "xl/sharedStrings.xml")? {
        Some(xml) => xml_text(&xml, &["si"]).map_err(|_| Skip::Unreadable)?,
        None => Vec::new(),
    };
    let names = match part(&mut archive, "xl/workbook.xml")? {
        Some(xml) => sheet_names(&xml),
        None => Vec::new(),
    };
    let mut blocks = Vec::new();
    for (index, (number, name)) in numbered_parts(&archive, "xl/worksheets/sheet").into_iter().enumerate() {
        let sheet = part(&mut archive, &name)?.ok_or(Skip::Unreadable)?;
        let rows = sheet_rows(&sheet, &shared).map_err(|_| Skip::Unreadable)?;
        let title = names.get(index).cloned().unwrap_or_else(|| format!("Sheet {number}"));
        blocks.push(Block::Heading(title));
        blocks.extend(rows.chunks(50).map(|rows| Block::Paragraph(rows.join("\n"))));
    }
    Ok(blocks)
}

fn sheet_names(workbook: &[u8]) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_reader(workbook);
    let mut names = Vec::new();
    let mut buffer = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buffer) {
        match event {
            Event::Empty(tag) | Event::Start(tag) if tag.name().as_ref() == b"sheet" => {
                if let Some(name) = tag.try_get_attribute("name").ok().flatten()
                    && let Ok(value) = name.unescape_value()
                {
                    names.push(value.into_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    names
}

/// A worksheet's rows as `a | b | c` lines: cells are shared strings (`t="s"`), inline
/// strings or values as written.
fn sheet_rows(sheet: &[u8], shared: &[String]) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_reader(sheet);
    let mut buffer = Vec::new();
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell_is_shared = false;
    let mut in_value = false;
    loop {
        match reader.read_event_into(&mut buffer)? {
            Event::Start(tag) if tag.name().as_ref() == b"c" => {
                cell_is_shared = tag.try_get_attribute("t").ok().flatten().is_some_and(|t| t.value.as_ref() == b"s");
            }
            Event::Start(tag) if matches!(tag.name().as_ref(), b"v" | b"t") => in_value = true,
            Event::End(tag) if matches!(tag.name().as_ref(), b"v" | b"t") => in_value = false,
            Event::Text(text) if in_value => {
                let value = text.decode().map_err(quick_xml::Error::from)?.into_owned();
                let value = if cell_is_shared {
                    value.trim().parse::<usize>().ok().and_then(|i| shared.get(i)).cloned().unwrap_or_default()
                } else {
                    value
                };
                row.push(value);
            }
            Event::End(tag) if tag.name().as_ref() == b"row" => {
                let line = std::mem::take(&mut row).join(" | ");
                if !line.trim().is_empty() {
                    rows.push(line);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_name_then_by_media_type() {
        assert_eq!(format_of("notes.MD", ""), Some(Format::Text));
        assert_eq!(format_of("export", "text/csv"), Some(Format::Delimited(b',')));
        assert_eq!(format_of("report.pdf", "application/octet-stream"), Some(Format::Pdf));
        assert_eq!(format_of("diagram.png", "image/png"), None);
    }

    #[test]
    fn csv_rows_become_lines_and_quoted_separators_stay() {
        let xhtml =
            extract(Format::Delimited(b','), b"name,role\n\"Lovelace, Ada\",\"says \"\"hi\"\"\"\n", 1000).unwrap();
        assert_eq!(xhtml, "<p>name | role<br/>Lovelace, Ada | says \"hi\"</p>");
    }

    #[test]
    fn markdown_headings_and_paragraphs_survive_and_limits_hold() {
        let xhtml = extract(Format::Text, b"# Runbook\n\nStep <one> & two.", 1000).unwrap();
        assert_eq!(xhtml, "<h2>Runbook</h2><p>Step &lt;one&gt; &amp; two.</p>");
        assert_eq!(extract(Format::Text, "x".repeat(11).as_bytes(), 10), Err(Skip::TooLarge));
    }

    #[test]
    fn broken_files_are_named_not_panicked_on() {
        assert_eq!(extract(Format::Pdf, b"%PDF-1.4 garbage", 1000), Err(Skip::Unreadable));
        assert_eq!(extract(Format::Docx, b"not a zip", 1000), Err(Skip::Unreadable));
        assert_eq!(extract(Format::Xlsx, &[0xD0, 0xCF, 0x11, 0xE0, 0, 0], 1000), Err(Skip::Encrypted));
    }

    /// The end-to-end tests' fixtures (`tests/fixtures/attachments/make.py`), one sentence each.
    #[test]
    fn every_fixture_type_gives_its_sentence() {
        let fixture = |name: &str| {
            std::fs::read(format!("{}/../tests/fixtures/attachments/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        for (name, media_type, word) in [
            ("storage-plan.pdf", "application/pdf", "kittiwake"),
            ("guide.docx", "", "gannet"),
            ("review.pptx", "", "cormorant"),
            ("owners.xlsx", "", "puffin"),
            ("runbook.md", "", "skua"),
            ("contacts.csv", "text/csv", "shearwater"),
            ("config.json", "", "petrel"),
            ("feed.xml", "", "tern"),
            ("faq.html", "", "fulmar"),
            ("notes.txt", "", "guillemot"),
        ] {
            let format = format_of(name, media_type).unwrap_or_else(|| panic!("{name}: a known type"));
            let xhtml = extract(format, &fixture(name), 200_000).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(xhtml.contains(word), "{name}: {xhtml}");
        }
        let sheet = extract(Format::Xlsx, &fixture("owners.xlsx"), 200_000).unwrap();
        assert!(sheet.contains("<h2>Owners</h2>") && sheet.contains("North | the puffin team | 42000"), "{sheet}");
        assert_eq!(extract(Format::Docx, &fixture("corrupt.docx"), 200_000), Err(Skip::Unreadable));
        assert_eq!(extract(Format::Xlsx, &fixture("locked.xlsx"), 200_000), Err(Skip::Encrypted));
    }
}
