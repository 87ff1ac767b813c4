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

/// A `redis`-crate connection (standalone or Cluster) with the script's SHA1 at hand.
pub(crate) struct RedisRsConn {
    conn: Conn,
    sha: String,
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
        Ok(Self::new(Conn::Cluster(conn)))
    }

    /// Uses an existing connection manager.
    pub(crate) fn from_manager(conn: ConnectionManager) -> Self {
        Self::new(Conn::Single(conn))
    }

    fn new(conn: Conn) -> Self {
        Self {
            conn,
            sha: redis::Script::new(POLICY_SCRIPT).get_hash().to_owned(),
        }
    }

    async fn query(&self, cmd: &redis::Cmd) -> redis::RedisResult<Vec<u8>> {
        match &self.conn {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }
}

/// `EVALSHA sha` or `EVAL script`, then the keys and the arguments.
fn script_cmd(verb: &str, script: &str, keys: &[String], args: &[&[u8]]) -> redis::Cmd {
    // Sized once: growing the buffers argument by argument would reallocate them several times.
    let bytes = verb.len()
        + script.len()
        + 4
        + keys.iter().map(String::len).sum::<usize>()
        + args.iter().map(|a| a.len()).sum::<usize>();
    let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + args.len(), bytes);
    cmd.arg(verb);
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(k.as_str());
    }
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

#[async_trait]
impl ScriptConn for RedisRsConn {
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError> {
        let result = match self
            .query(&script_cmd("EVALSHA", &self.sha, keys, args))
            .await
        {
            // The server lost its scripts: EVAL sends the text and caches it again.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.query(&script_cmd("EVAL", POLICY_SCRIPT, keys, args))
                    .await
            }
            other => other,
        };
        result.map_err(|e| backend_error("redis", e))
    }
}
