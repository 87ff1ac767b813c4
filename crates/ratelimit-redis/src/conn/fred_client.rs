//! The policy function on the `fred` crate: a reconnecting client, standalone or Cluster.

use async_trait::async_trait;
use fred::bytes::Bytes;
use fred::prelude::{
    Builder, Client, ClientLike, Config, FunctionInterface, ReconnectPolicy, ServerConfig,
};
use fred::types::{Key, Value};
use ratelimit_limiter::BackendError;

use super::{NEEDS_REDIS_7, POLICY, ScriptConn, backend_error, is_not_loaded, is_unsupported};
use crate::error::RedisLimiterError;

/// A `fred` client with the policy function's name at hand.
pub(crate) struct FredConn {
    client: Client,
    function: fred::bytes_utils::Str,
}

impl FredConn {
    /// Connects with a fred URL: `redis://`, `rediss://`, or `redis-cluster://host:port?node=host:port`.
    pub(crate) async fn connect(url: &str) -> Result<Self, RedisLimiterError> {
        let config =
            Config::from_url(url).map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Self::with_config(config).await
    }

    /// Connects to a Cluster through the given nodes (`redis://host:port` each).
    pub(crate) async fn connect_cluster(urls: &[String]) -> Result<Self, RedisLimiterError> {
        let hosts = urls
            .iter()
            .map(|u| {
                let c =
                    Config::from_url(u).map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
                match c.server {
                    ServerConfig::Centralized { server } => Ok(server),
                    _ => Err(RedisLimiterError::Connect(format!("{u} is not a node URL"))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = Config {
            server: ServerConfig::Clustered {
                hosts,
                policy: Default::default(),
            },
            ..Config::default()
        };
        Self::with_config(config).await
    }

    async fn with_config(config: Config) -> Result<Self, RedisLimiterError> {
        let client = Builder::from_config(config)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        client
            .init()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        let conn = Self::from_client(client);
        conn.load()
            .await
            .map_err(|e| RedisLimiterError::Connect(e.to_string()))?;
        Ok(conn)
    }

    /// Uses a client the caller built and initialised (the policy is loaded on first use).
    pub(crate) fn from_client(client: Client) -> Self {
        Self {
            client,
            function: POLICY.name.as_str().into(),
        }
    }
}

/// The keys and arguments of one call, as fred takes them (each copied once).
fn request(keys: &[String], args: &[&[u8]]) -> (Vec<Key>, Vec<Value>) {
    (
        keys.iter().map(|k| Key::from(k.as_str())).collect(),
        args.iter()
            .map(|a| Value::Bytes(Bytes::copy_from_slice(a)))
            .collect(),
    )
}

/// The function's reply, a byte string.
fn reply(value: Value) -> Result<Vec<u8>, BackendError> {
    match value {
        Value::Bytes(b) => Ok(b.into()),
        // A reply that happens to be valid UTF-8.
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => Err(BackendError::new(
            format!("fred: unexpected function reply {other:?}"),
            None,
        )),
    }
}

/// A `fred` error, and what it means for a server without Redis Functions.
fn failed(e: fred::error::Error) -> BackendError {
    if is_unsupported(e.details()) {
        return backend_error(&format!("fred: {NEEDS_REDIS_7}"), e);
    }
    backend_error("fred", e)
}

#[async_trait]
impl ScriptConn for FredConn {
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError> {
        let (k, a) = request(keys, args);
        match self
            .client
            .fcall::<Value, _, _, _>(self.function.clone(), k, a)
            .await
        {
            Ok(r) => reply(r),
            // This server does not have the library (yet, or any more): load it, call again.
            Err(e) if is_not_loaded(e.details()) => {
                self.load().await?;
                let (k, a) = request(keys, args);
                self.client
                    .fcall::<Value, _, _, _>(self.function.clone(), k, a)
                    .await
                    .map_err(failed)
                    .and_then(reply)
            }
            Err(e) => Err(failed(e)),
        }
    }

    async fn load(&self) -> Result<(), BackendError> {
        // On a Cluster, on every primary; on one server, there.
        self.client
            .function_load_cluster::<Value, _>(true, POLICY.code.as_str())
            .await
            .map(drop)
            .map_err(failed)
    }
}
