//! The policy function on the `redis` crate: a reconnecting multiplexed connection, or a Cluster.

use async_trait::async_trait;
use ratelimit_limiter::BackendError;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use super::{NEEDS_REDIS_7, POLICY, ScriptConn, backend_error, is_not_loaded, is_unsupported};
use crate::error::RedisLimiterError;

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A `redis`-crate connection (standalone or Cluster).
pub(crate) struct RedisRsConn {
    conn: Conn,
}

impl RedisRsConn {
    /// Connects to one server (`redis://` or `rediss://` URL) and loads the policy; reconnects by
    /// itself.
    pub(crate) async fn connect(url: &str) -> Result<Self, RedisLimiterError> {
        let client =
            redis::Client::open(url).map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Self::loaded(Self::from_manager(conn)).await
    }

    /// Connects to a Redis Cluster through any of its nodes and loads the policy on its masters.
    pub(crate) async fn connect_cluster(urls: &[String]) -> Result<Self, RedisLimiterError> {
        let client = redis::cluster::ClusterClient::new(urls.to_vec())
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Self::loaded(Self {
            conn: Conn::Cluster(conn),
        })
        .await
    }

    async fn loaded(self) -> Result<Self, RedisLimiterError> {
        self.load()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Ok(self)
    }

    /// Uses an existing connection manager (the policy is loaded on first use).
    pub(crate) fn from_manager(conn: ConnectionManager) -> Self {
        Self {
            conn: Conn::Single(conn),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match &self.conn {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }
}

/// `FCALL function numkeys keys... args...`.
fn fcall(keys: &[String], args: &[&[u8]]) -> redis::Cmd {
    let name = POLICY.name.as_str();
    // Sized once: growing the buffers argument by argument would reallocate them several times.
    let bytes = 5
        + name.len()
        + 4
        + keys.iter().map(String::len).sum::<usize>()
        + args.iter().map(|a| a.len()).sum::<usize>();
    let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + args.len(), bytes);
    cmd.arg("FCALL").arg(name).arg(keys.len());
    for k in keys {
        cmd.arg(k.as_str());
    }
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

/// The message of a `redis` error, and what it means for a server without Redis Functions.
fn failed(e: redis::RedisError) -> BackendError {
    if is_unsupported(&e.to_string()) {
        return backend_error(&format!("redis: {NEEDS_REDIS_7}"), e);
    }
    backend_error("redis", e)
}

#[async_trait]
impl ScriptConn for RedisRsConn {
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError> {
        let cmd = fcall(keys, args);
        match self.query(&cmd).await {
            // This server does not have the library (yet, or any more): load it, call again.
            Err(e) if is_not_loaded(&e.to_string()) => {
                self.load().await?;
                self.query(&cmd).await.map_err(failed)
            }
            other => other.map_err(failed),
        }
    }

    async fn load(&self) -> Result<(), BackendError> {
        // On a Cluster the client sends FUNCTION LOAD to every master and needs all to succeed.
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD").arg("REPLACE").arg(POLICY.code.as_str());
        self.query::<redis::Value>(&cmd)
            .await
            .map(drop)
            .map_err(failed)
    }
}
