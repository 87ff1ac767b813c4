//! A small parser for the subset of RFC 9651 structured fields that rate-limit headers use: a
//! list of members, each a bare item (string, token, number, boolean, byte sequence) or a
//! dictionary member `key=item`, with parameters `;key[=item]`.
//!
//! It is lenient where leniency cannot change the meaning: optional whitespace (spaces and tabs)
//! is accepted around `,`, `;` and `=`, keys may have upper-case letters, and numbers may have any
//! number of digits (callers turn them into integers or durations and refuse what overflows).
//! Anything else that does not follow the grammar (an unterminated string, an inner list, a stray
//! character, a trailing comma) fails the whole field, as RFC 9651 requires.

/// One bare item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bare<'a> {
    /// An integer or decimal, as its text: `-`? digits [ `.` digits ].
    Number(&'a str),
    /// A quoted string, unescaped.
    String(String),
    /// A token (`burst`, `*`, `foo/bar`).
    Token(&'a str),
    /// `?1` or `?0`, or a parameter given without a value.
    Boolean(bool),
    /// A byte sequence `:base64:`, as its base64 text.
    Bytes(&'a str),
}

impl Bare<'_> {
    /// The text of a string or a token (how policies are named and units written).
    pub(super) fn name(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            Self::Token(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a number.
    pub(super) fn number(&self) -> Option<&str> {
        match self {
            Self::Number(s) => Some(s),
            _ => None,
        }
    }
}

/// One member of a list (or of a dictionary, when `key` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member<'a> {
    /// The key of a dictionary member `key=value`; `None` for a list item.
    pub(super) key: Option<&'a str>,
    /// The item.
    pub(super) value: Bare<'a>,
    /// The parameters in order.
    pub(super) params: Vec<(&'a str, Bare<'a>)>,
}

impl Member<'_> {
    /// The value of parameter `key` (ASCII case-insensitive); the last one wins if repeated, as
    /// RFC 9651 says.
    pub(super) fn param(&self, key: &str) -> Option<&Bare<'_>> {
        self.params
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    }
}

/// Parses a whole field value as a list; `None` if it is not one.
pub(super) fn parse_list(input: &str) -> Option<Vec<Member<'_>>> {
    let mut parser = Parser { input, pos: 0 };
    let mut members = Vec::new();
    parser.skip_whitespace();
    if parser.at_end() {
        return Some(members);
    }
    loop {
        members.push(parser.member()?);
        parser.skip_whitespace();
        if parser.at_end() {
            return Some(members);
        }
        if !parser.eat(b',') {
            return None;
        }
        parser.skip_whitespace();
        if parser.at_end() {
            return None;
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The text from `start` while `accept` holds for each byte (ASCII only, so the slice is on
    /// character boundaries).
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii() && accept(b)) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    fn member(&mut self) -> Option<Member<'a>> {
        let mut key = None;
        let mut value = self.bare()?;
        if let Bare::Token(token) = value {
            let before = self.pos;
            self.skip_whitespace();
            if self.eat(b'=') {
                if !is_key(token) {
                    return None;
                }
                self.skip_whitespace();
                key = Some(token);
                value = self.bare()?;
            } else {
                self.pos = before;
            }
        }
        let params = self.params()?;
        Some(Member { key, value, params })
    }

    fn params(&mut self) -> Option<Vec<(&'a str, Bare<'a>)>> {
        let mut params = Vec::new();
        loop {
            let before = self.pos;
            self.skip_whitespace();
            if !self.eat(b';') {
                self.pos = before;
                return Some(params);
            }
            self.skip_whitespace();
            let key = self.key()?;
            let before_value = self.pos;
            self.skip_whitespace();
            let value = if self.eat(b'=') {
                self.skip_whitespace();
                self.bare()?
            } else {
                self.pos = before_value;
                Bare::Boolean(true)
            };
            params.push((key, value));
        }
    }

    fn key(&mut self) -> Option<&'a str> {
        let key = self.take_while(is_key_char);
        is_key(key).then_some(key)
    }

    fn bare(&mut self) -> Option<Bare<'a>> {
        match self.peek()? {
            b'"' => self.string(),
            b':' => {
                self.pos += 1;
                let bytes = self
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                self.eat(b':').then_some(Bare::Bytes(bytes))
            }
            b'?' => {
                self.pos += 1;
                let value = match self.peek()? {
                    b'1' => true,
                    b'0' => false,
                    _ => return None,
                };
                self.pos += 1;
                Some(Bare::Boolean(value))
            }
            b'-' | b'0'..=b'9' => self.number(),
            b if b.is_ascii_alphabetic() || b == b'*' => Some(Bare::Token(
                self.take_while(|b| is_tchar(b) || b == b':' || b == b'/'),
            )),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Bare<'a>> {
        let start = self.pos;
        self.eat(b'-');
        if self.take_while(|b| b.is_ascii_digit()).is_empty() {
            return None;
        }
        if self.eat(b'.') && self.take_while(|b| b.is_ascii_digit()).is_empty() {
            return None;
        }
        Some(Bare::Number(&self.input[start..self.pos]))
    }

    fn string(&mut self) -> Option<Bare<'a>> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(Bare::String(out));
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self.peek()?;
                    if !matches!(escaped, b'"' | b'\\') {
                        return None;
                    }
                    out.push(char::from(escaped));
                    self.pos += 1;
                }
                b @ 0x20..=0x7e => {
                    out.push(char::from(b));
                    self.pos += 1;
                }
                _ => return None,
            }
        }
    }
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'*')
}

/// A key: a letter or `*`, then letters, digits, `_`, `-`, `.`, `*` (upper case accepted).
fn is_key(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'*')
        && bytes.all(is_key_char)
}

/// An RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(value: Bare<'a>, params: &[(&'a str, Bare<'a>)]) -> Member<'a> {
        Member {
            key: None,
            value,
            params: params.to_vec(),
        }
    }

    fn string(s: &str) -> Bare<'static> {
        Bare::String(s.to_owned())
    }

    #[test]
    fn draft_policy_list() {
        let members = parse_list("\"burst\";q=100;w=60, \"daily\";q=1000;w=86400").expect("valid");
        assert_eq!(
            members,
            [
                item(
                    string("burst"),
                    &[("q", Bare::Number("100")), ("w", Bare::Number("60"))]
                ),
                item(
                    string("daily"),
                    &[("q", Bare::Number("1000")), ("w", Bare::Number("86400"))]
                ),
            ]
        );
    }

    #[test]
    fn every_bare_item_kind() {
        let members =
            parse_list("tok/en:1, -12.5, ?0, :aGk=:, \"a \\\"q\\\" \\\\ b\", *").expect("valid");
        let values: Vec<Bare<'_>> = members.into_iter().map(|m| m.value).collect();
        assert_eq!(
            values,
            [
                Bare::Token("tok/en:1"),
                Bare::Number("-12.5"),
                Bare::Boolean(false),
                Bare::Bytes("aGk="),
                string("a \"q\" \\ b"),
                Bare::Token("*"),
            ]
        );
    }

    #[test]
    fn parameters_without_value_are_true_and_repeats_take_the_last() {
        let members = parse_list("a;flag;q=1;q=2").expect("valid");
        assert_eq!(members[0].param("flag"), Some(&Bare::Boolean(true)));
        assert_eq!(members[0].param("q"), Some(&Bare::Number("2")));
        assert_eq!(members[0].param("Q"), Some(&Bare::Number("2")));
        assert_eq!(members[0].param("w"), None);
    }

    #[test]
    fn dictionary_members_of_the_older_drafts() {
        let members = parse_list("limit=100, remaining=50, reset=5;x").expect("valid");
        assert_eq!(members[0].key, Some("limit"));
        assert_eq!(members[0].value, Bare::Number("100"));
        assert_eq!(members[2].key, Some("reset"));
        assert_eq!(members[2].param("x"), Some(&Bare::Boolean(true)));
    }

    #[test]
    fn whitespace_is_tolerated_around_separators() {
        let tight = parse_list("\"a\";q=1;w=2,\"b\";q=3").expect("valid");
        let loose = parse_list(" \t\"a\" ; q = 1 ;\tw=2 ,\t \"b\";  q=3  ").expect("valid");
        assert_eq!(tight, loose);
        assert_eq!(parse_list("").expect("valid"), []);
        assert_eq!(parse_list("   ").expect("valid"), []);
    }

    #[test]
    fn invalid_lists_fail_whole() {
        for bad in [
            "a,",
            ",a",
            "a,,b",
            "\"open",
            "\"bad \\n escape\"",
            "(a b)",
            "a;",
            "a;=1",
            "a;q=",
            "a b",
            "-",
            "1.",
            "?2",
            ":abc",
            "\"caf\u{e9}\"",
            "\u{e9}",
            "a;q=1 junk",
            "1=2",
            "a/b=1",
        ] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
    }
}
