//! Basic-auth checks for the site URL (classic tokens) and the gateway (scoped tokens).

use base64::Engine as _;

use crate::state::{State, TokenKind, User};

/// Body of the edge proxy's 401 for bad Basic credentials on the site URL (`text/plain`, recorded from Cloud).
pub const SITE_401_BODY: &str = "Basic authentication with passwords is deprecated.  For more information, see: https://developer.atlassian.com/cloud/confluence/deprecation-notice-basic-auth/\n";

/// Body of the gateway's 401 for a token without the required scope (or not a scoped token at all).
pub const GATEWAY_401_BODY: &str = r#"{"code":401,"message":"Unauthorized; scope does not match"}"#;

/// Decodes `Basic base64(email:token)` into (email, token).
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (email, token) = text.split_once(':')?;
    Some((email.to_string(), token.to_string()))
}

/// Finds the non-revoked user whose e-mail (case-insensitive) and token both match.
fn find_user<'a>(state: &'a State, header: &str) -> Option<&'a User> {
    let (email, token) = parse_basic(header)?;
    state.users.iter().find(|u| !u.revoked && u.token == token && u.email.eq_ignore_ascii_case(&email))
}

/// Site URL: `Ok(None)` = anonymous (no header), `Ok(Some(user))` = a valid classic token,
/// `Err(())` = anything else (wrong e-mail, unknown/revoked token, scoped token).
pub(crate) fn authenticate_site<'a>(state: &'a State, header: Option<&str>) -> Result<Option<&'a User>, ()> {
    let Some(header) = header else {
        return Ok(None);
    };
    match find_user(state, header) {
        Some(u) if u.kind == TokenKind::Classic => Ok(Some(u)),
        _ => Err(()),
    }
}

/// Gateway: the caller must present a valid scoped token holding one of `any_of` scopes
/// (an empty `any_of` accepts any valid scoped token).
pub(crate) fn authenticate_gateway<'a>(
    state: &'a State,
    header: Option<&str>,
    any_of: &[&str],
) -> Result<&'a User, ()> {
    let user = find_user(state, header.ok_or(())?).ok_or(())?;
    match &user.kind {
        TokenKind::Scoped { scopes } if any_of.is_empty() || any_of.iter().any(|s| scopes.iter().any(|g| g == s)) => {
            Ok(user)
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parses() {
        let h = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("a@b.c:to:ken"));
        assert_eq!(parse_basic(&h), Some(("a@b.c".to_string(), "to:ken".to_string())));
        assert_eq!(parse_basic("Bearer x"), None);
    }
}
