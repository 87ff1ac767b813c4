//! Several independent servers as one: each budget lives on the server its hash tag maps to.

use std::sync::Arc;

use async_trait::async_trait;
use ratelimit_limiter::BackendError;

use super::ScriptConn;
use crate::ring::Ring;

/// Routes every call to the server that owns the budget, by consistent hashing of its hash tag.
pub(crate) struct ShardedConn {
    ring: Ring,
    conns: Vec<Arc<dyn ScriptConn>>,
}

impl ShardedConn {
    /// `names` identify the servers (their URLs) in the same order as `conns`.
    pub(crate) fn new(names: &[String], conns: Vec<Arc<dyn ScriptConn>>) -> Self {
        Self {
            ring: Ring::new(names),
            conns,
        }
    }
}

/// The hash tag of a key (`{...}`), which all of one budget's keys share.
fn tag(key: &str) -> &str {
    match (key.find('{'), key.find('}')) {
        (Some(a), Some(b)) if b > a + 1 => &key[a..=b],
        _ => key,
    }
}

#[async_trait]
impl ScriptConn for ShardedConn {
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError> {
        let key = keys.first().map_or("", |k| tag(k));
        let conn = &self.conns[self.ring.server_of(key)];
        conn.run(keys, args).await
    }

    async fn load(&self) -> Result<(), BackendError> {
        for conn in &self.conns {
            conn.load().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budgets_keys_share_a_tag() {
        assert_eq!(tag("{llmrl:a:k}:state"), "{llmrl:a:k}");
        assert_eq!(tag("{llmrl:a:k}:slots"), "{llmrl:a:k}");
        assert_eq!(tag("plain"), "plain");
    }
}
