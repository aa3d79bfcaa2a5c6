//! A small CQL subset for `/wiki/rest/api/search` and `/wiki/rest/api/content/search`:
//! fields `space`, `type`, `id`, `title`, `text`, `ancestor`, `parent`, `label`, `lastmodified`,
//! `created`; operators `= != ~ !~ > >= < <= in, not in`; `AND`, `OR`, `NOT`, parentheses; `ORDER BY`.
//! Dates: `"yyyy-MM-dd HH:mm"`, `"yyyy/MM/dd HH:mm"`, `"yyyy-MM-dd"`, `"yyyy/MM/dd"`, in UTC, minute resolution.

use crate::routes::plain_text;
use crate::state::{Content, State, days_from_civil};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(String),
    LParen,
    RParen,
    Comma,
}

/// A parsed CQL expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { field: String, op: String, values: Vec<String> },
}

/// A parsed query: optional filter plus `ORDER BY` keys (field, descending).
#[derive(Debug, Clone)]
pub(crate) struct Cql {
    pub expr: Option<Expr>,
    pub order: Vec<(String, bool)>,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\\') => {
                            if let Some(n) = chars.get(i + 1) {
                                v.push(*n);
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' | '~' => {
                out.push(Tok::Op(c.to_string()));
                i += 1;
            }
            '!' => match chars.get(i + 1) {
                Some(n @ ('=' | '~')) => {
                    out.push(Tok::Op(format!("!{n}")));
                    i += 2;
                }
                _ => return Err("unexpected '!'".into()),
            },
            '>' | '<' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op(format!("{c}=")));
                    i += 2;
                } else {
                    out.push(Tok::Op(c.to_string()));
                    i += 1;
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()=,~!<>\"'".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.peek_kw("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_kw("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err("expected ')'".into());
            }
            return Ok(e);
        }
        self.clause()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            Some(Tok::Word(w)) => {
                if self.peek() == Some(&Tok::LParen) {
                    return Err(format!("functions are not supported: {w}()"));
                }
                Ok(w)
            }
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn clause(&mut self) -> Result<Expr, String> {
        let field = match self.next() {
            Some(Tok::Word(w)) => w.to_lowercase(),
            other => return Err(format!("expected a field, found {other:?}")),
        };
        let mut negate_in = false;
        if self.peek_kw("not") {
            self.pos += 1;
            negate_in = true;
        }
        if self.peek_kw("in") {
            self.pos += 1;
            if self.next() != Some(Tok::LParen) {
                return Err("expected '(' after IN".into());
            }
            let mut values = vec![self.value()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.value()?);
            }
            if self.next() != Some(Tok::RParen) {
                return Err("expected ')'".into());
            }
            let e = Expr::Cmp { field, op: "=".into(), values };
            return Ok(if negate_in { Expr::Not(Box::new(e)) } else { e });
        }
        if negate_in {
            return Err("expected IN after NOT".into());
        }
        let op = match self.next() {
            Some(Tok::Op(o)) => o,
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        let value = self.value()?;
        Ok(Expr::Cmp { field, op, values: vec![value] })
    }
}

/// Parses a CQL string.
pub(crate) fn parse(s: &str) -> Result<Cql, String> {
    let mut p = Parser { toks: lex(s)?, pos: 0 };
    let expr = if p.peek().is_none() || p.peek_kw("order") { None } else { Some(p.or()?) };
    let mut order = Vec::new();
    if p.peek_kw("order") {
        p.pos += 1;
        if !p.peek_kw("by") {
            return Err("expected BY after ORDER".into());
        }
        p.pos += 1;
        loop {
            let f = match p.next() {
                Some(Tok::Word(w)) => w.to_lowercase(),
                other => return Err(format!("expected an order field, found {other:?}")),
            };
            let mut desc = false;
            if p.peek_kw("desc") {
                desc = true;
                p.pos += 1;
            } else if p.peek_kw("asc") {
                p.pos += 1;
            }
            order.push((f, desc));
            if p.peek() == Some(&Tok::Comma) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    if let Some(t) = p.peek() {
        return Err(format!("unexpected token {t:?}"));
    }
    if expr.is_none() {
        return Err("the query has no clauses".into());
    }
    Ok(Cql { expr, order })
}

/// Parses a CQL date literal to epoch milliseconds (UTC).
fn parse_date(v: &str) -> Result<u64, String> {
    let bad = || format!("unsupported date format: {v:?}");
    let norm = v.trim().replace('/', "-");
    let (date, time) = match norm.split_once(' ') {
        Some((d, t)) => (d.to_string(), Some(t.to_string())),
        None => (norm, None),
    };
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 {
        return Err(bad());
    }
    let y: i64 = dp[0].parse().map_err(|_| bad())?;
    let m: u32 = dp[1].parse().map_err(|_| bad())?;
    let d: u32 = dp[2].parse().map_err(|_| bad())?;
    let (hh, mm) = match time {
        None => (0, 0),
        Some(t) => {
            let (h, mi) = t.split_once(':').ok_or_else(bad)?;
            (h.parse::<u64>().map_err(|_| bad())?, mi.parse::<u64>().map_err(|_| bad())?)
        }
    };
    let days = days_from_civil(y, m, d);
    Ok(days as u64 * 86_400_000 + hh * 3_600_000 + mm * 60_000)
}

fn cmp_num(a: u64, op: &str, b: u64) -> Result<bool, String> {
    Ok(match op {
        "=" => a == b,
        "!=" => a != b,
        ">" => a > b,
        ">=" => a >= b,
        "<" => a < b,
        "<=" => a <= b,
        _ => return Err(format!("operator {op} not supported here")),
    })
}

/// Evaluates an expression against one piece of content.
pub(crate) fn eval(e: &Expr, st: &State, c: &Content) -> Result<bool, String> {
    match e {
        Expr::And(a, b) => Ok(eval(a, st, c)? && eval(b, st, c)?),
        Expr::Or(a, b) => Ok(eval(a, st, c)? || eval(b, st, c)?),
        Expr::Not(a) => Ok(!eval(a, st, c)?),
        Expr::Cmp { field, op, values } => {
            let any = |f: &dyn Fn(&str) -> Result<bool, String>| -> Result<bool, String> {
                let mut hit = false;
                for v in values {
                    hit |= f(v)?;
                }
                Ok(hit)
            };
            let eq_op = |pos: bool| -> Result<bool, String> {
                match op.as_str() {
                    "=" => Ok(pos),
                    "!=" => Ok(!pos),
                    _ => Err(format!("operator {op} not supported for {field}")),
                }
            };
            match field.as_str() {
                "space" | "space.key" => {
                    let key = &st.spaces[&c.space_id].key;
                    eq_op(any(&|v| Ok(v == key))?)
                }
                "type" => eq_op(any(&|v| Ok(v.eq_ignore_ascii_case(c.kind.as_str())))?),
                "id" | "content" => {
                    let mut hit = false;
                    for v in values {
                        let n: u64 = v.parse().map_err(|_| format!("bad id {v:?}"))?;
                        hit |= cmp_num(c.id, if op == "!=" { "=" } else { op }, n)?;
                    }
                    Ok(if op == "!=" { !hit } else { hit })
                }
                "ancestor" => {
                    let anc = st.ancestors(c.id);
                    eq_op(any(&|v| Ok(anc.iter().any(|a| a.id.to_string() == v)))?)
                }
                "parent" => eq_op(any(&|v| Ok(c.parent_id.map(|p| p.to_string()).as_deref() == Some(v)))?),
                "label" => eq_op(any(&|v| Ok(c.labels.iter().any(|l| l.eq_ignore_ascii_case(v))))?),
                "title" | "text" => {
                    let hay = if field == "title" {
                        c.title.to_lowercase()
                    } else {
                        format!("{} {}", c.title, plain_text(&c.storage)).to_lowercase()
                    };
                    let contains = any(&|v| Ok(hay.contains(&v.to_lowercase())))?;
                    match op.as_str() {
                        "~" => Ok(contains),
                        "!~" => Ok(!contains),
                        "=" if field == "title" => any(&|v| Ok(c.title.eq_ignore_ascii_case(v))),
                        "!=" if field == "title" => Ok(!any(&|v| Ok(c.title.eq_ignore_ascii_case(v)))?),
                        _ => Err(format!("operator {op} not supported for {field}")),
                    }
                }
                "lastmodified" | "created" => {
                    let t = if field == "created" { c.created_at } else { c.modified_at };
                    let t = t - t % 60_000; // minute resolution
                    let mut hit = false;
                    for v in values {
                        hit |= cmp_num(t, op, parse_date(v)?)?;
                    }
                    Ok(hit)
                }
                other => Err(format!("field {other:?} is not supported by the fake")),
            }
        }
    }
}

/// Sorts by the `ORDER BY` keys (default: id ascending).
pub(crate) fn sort(items: &mut [&Content], order: &[(String, bool)]) -> Result<(), String> {
    for (f, _) in order {
        if !matches!(f.as_str(), "lastmodified" | "created" | "title" | "id") {
            return Err(format!("cannot order by {f:?}"));
        }
    }
    items.sort_by(|a, b| {
        for (f, desc) in order {
            let o = match f.as_str() {
                "lastmodified" => a.modified_at.cmp(&b.modified_at),
                "created" => a.created_at.cmp(&b.created_at),
                "title" => a.title.cmp(&b.title),
                _ => a.id.cmp(&b.id),
            };
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical_queries() {
        let q = parse(r#"space = "DOCS" AND type in (page, blogpost) AND lastmodified >= "2026-01-05 09:00" ORDER BY lastmodified DESC"#).unwrap();
        assert!(q.expr.is_some());
        assert_eq!(q.order, vec![("lastmodified".to_string(), true)]);
        assert!(parse("space = ").is_err());
        assert!(parse("type = page AND").is_err());
        assert!(parse(r#"NOT (space="A" OR space != "B") and title ~ "x""#).is_ok());
        assert_eq!(parse_date("2026/01/05").unwrap(), 1_767_571_200_000);
    }
}
