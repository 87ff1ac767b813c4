//! The policy script on the `redis` crate: a reconnecting multiplexed connection, or a Cluster.

use async_trait::async_trait;
use ratelimit_limiter::BackendError;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use super::{POLICY_SCRIPT, ScriptConn, backend_error};
use crate::error::RedisLimiterError;

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A `redis`-crate connection (standalone or Cluster) with the script ready.
pub(crate) struct RedisRsConn {
    conn: Conn,
    script: redis::Script,
}

impl RedisRsConn {
    /// Connects to one server (`redis://` or `rediss://` URL); reconnects by itself.
    pub(crate) async fn connect(url: &str) -> Result<Self, RedisLimiterError> {
        let client =
            redis::Client::open(url).map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Ok(Self::from_manager(conn))
    }

    /// Connects to a Redis Cluster through any of its nodes.
    pub(crate) async fn connect_cluster(urls: &[String]) -> Result<Self, RedisLimiterError> {
        let client = redis::cluster::ClusterClient::new(urls.to_vec())
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Ok(Self {
            conn: Conn::Cluster(conn),
            script: redis::Script::new(POLICY_SCRIPT),
        })
    }

    /// Uses an existing connection manager.
    pub(crate) fn from_manager(conn: ConnectionManager) -> Self {
        Self {
            conn: Conn::Single(conn),
            script: redis::Script::new(POLICY_SCRIPT),
        }
    }
}

#[async_trait]
impl ScriptConn for RedisRsConn {
    async fn run(&self, keys: &[String], args: &[String]) -> Result<Vec<i64>, BackendError> {
        let mut invocation = self.script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        // `invoke_async` calls EVALSHA and, on NOSCRIPT, loads the script and retries.
        let result = match &self.conn {
            Conn::Single(c) => invocation.invoke_async(&mut c.clone()).await,
            Conn::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        };
        result.map_err(|e| backend_error("redis", e))
    }
}
