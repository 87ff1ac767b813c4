//! The JSONL formats: input lines (OpenAI Batch API style, or bare request bodies) and result
//! lines.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One input line, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The request's id: `custom_id` (or `id`) from the line, else `line-<n>`.
    pub id: String,
    /// 1-based line number in the input.
    pub line: u64,
    /// The endpoint path (`/v1/chat/completions` when the line does not say).
    pub endpoint: String,
    /// The request body.
    pub body: Value,
}

/// Why an input line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// Reads one input line. Accepted forms:
/// - the OpenAI Batch API's: `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
///   "body": {...}}` (`method` must be POST when present);
/// - a bare request body, as the OpenAI cookbook's parallel processor reads: `{"model": ...,
///   "messages": [...]}`, with an optional `"metadata": {"id": ...}` or `"custom_id"`, sent to
///   `default_endpoint`.
///
/// Blank lines are skipped (`Ok(None)`).
///
/// # Errors
/// [`LineError`] naming the line for invalid JSON, a non-object, a non-POST method or a missing
/// body.
pub fn parse_line(
    text: &str,
    line: u64,
    default_endpoint: &str,
) -> Result<Option<Item>, LineError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let err = |message: String| LineError { line, message };
    let value: Value = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(err("expected a JSON object".into()));
    };
    let id_of = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if map.contains_key("body") || map.contains_key("url") {
        if let Some(method) = map.get("method") {
            if method
                .as_str()
                .is_none_or(|m| !m.eq_ignore_ascii_case("POST"))
            {
                return Err(err(format!("method {method} is not POST")));
            }
        }
        let body = map
            .remove("body")
            .filter(Value::is_object)
            .ok_or_else(|| err("\"body\" must be the request object".into()))?;
        let endpoint = match map.get("url") {
            Some(Value::String(u)) => u.clone(),
            None => default_endpoint.to_owned(),
            Some(other) => return Err(err(format!("\"url\" must be a string, not {other}"))),
        };
        let id = id_of(map.get("custom_id"))
            .or_else(|| id_of(map.get("id")))
            .unwrap_or_else(|| format!("line-{line}"));
        return Ok(Some(Item {
            id,
            line,
            endpoint,
            body,
        }));
    }
    let id = id_of(map.get("custom_id"))
        .or_else(|| id_of(map.get("metadata").and_then(|m| m.get("id"))))
        .unwrap_or_else(|| format!("line-{line}"));
    // Our own keys are not part of the request.
    map.remove("custom_id");
    map.remove("metadata");
    Ok(Some(Item {
        id,
        line,
        endpoint: default_endpoint.to_owned(),
        body: Value::Object(map),
    }))
}

/// One output line: a request's answer or its error, keyed by the request's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The request's id.
    pub custom_id: String,
    /// The provider's answer, when it succeeded.
    pub response: Option<Response>,
    /// Why it failed, when it did.
    pub error: Option<Failure>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The HTTP status (200).
    pub status_code: u16,
    /// The response body.
    pub body: Value,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// The provider's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Whether retrying cannot help (a rerun with `retry_errors` tries it again anyway).
    pub permanent: bool,
}

impl Outcome {
    /// Whether the request succeeded.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.response.is_some() && self.error.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "/v1/chat/completions";

    #[test]
    fn batch_api_lines_keep_their_id_and_url() {
        let item = parse_line(
            r#"{"custom_id":"req-7","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}"#,
            3,
            CHAT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (item.id.as_str(), item.line, item.endpoint.as_str()),
            ("req-7", 3, "/v1/embeddings")
        );
        assert_eq!(item.body["input"], "x");
    }

    #[test]
    fn bare_bodies_go_to_the_default_endpoint_with_their_metadata_id() {
        let item = parse_line(
            r#"{"model":"m","messages":[],"metadata":{"id":42}}"#,
            9,
            CHAT,
        )
        .unwrap()
        .unwrap();
        assert_eq!((item.id.as_str(), item.endpoint.as_str()), ("42", CHAT));
        assert!(
            item.body.get("metadata").is_none(),
            "not sent to the provider"
        );
        let anonymous = parse_line(r#"{"model":"m","messages":[]}"#, 9, CHAT)
            .unwrap()
            .unwrap();
        assert_eq!(anonymous.id, "line-9");
    }

    #[test]
    fn bad_lines_name_their_line_and_blank_lines_are_skipped() {
        assert_eq!(parse_line("   ", 1, CHAT), Ok(None));
        for (text, what) in [
            ("{not json", "invalid JSON"),
            ("[1,2]", "JSON object"),
            (
                r#"{"custom_id":"a","method":"GET","url":"/v1/models","body":{}}"#,
                "not POST",
            ),
            (r#"{"custom_id":"a","url":"/v1/embeddings"}"#, "body"),
            (r#"{"custom_id":"a","url":5,"body":{}}"#, "url"),
        ] {
            let e = parse_line(text, 12, CHAT).unwrap_err();
            assert_eq!(e.line, 12);
            assert!(e.to_string().starts_with("line 12: "), "{e}");
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }
}
