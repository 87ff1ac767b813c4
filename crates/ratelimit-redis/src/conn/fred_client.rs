//! The policy script on the `fred` crate: a reconnecting client, standalone or Cluster.

use async_trait::async_trait;
use fred::bytes::Bytes;
use fred::prelude::{
    Builder, Client, ClientLike, Config, LuaInterface, ReconnectPolicy, ServerConfig,
};
use fred::types::{Key, Value};
use ratelimit_limiter::BackendError;

use super::{POLICY_SCRIPT, ScriptConn, backend_error};
use crate::error::RedisLimiterError;

/// A `fred` client with the script's SHA1 at hand.
pub(crate) struct FredConn {
    client: Client,
    sha: fred::bytes_utils::Str,
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
        Ok(Self::from_client(client))
    }

    /// Uses a client the caller built and initialised.
    pub(crate) fn from_client(client: Client) -> Self {
        Self {
            client,
            sha: fred::util::sha1_hash(POLICY_SCRIPT).into(),
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

/// The script's reply, a byte string.
fn reply(value: Value) -> Result<Vec<u8>, BackendError> {
    match value {
        Value::Bytes(b) => Ok(b.into()),
        // A reply that happens to be valid UTF-8.
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => Err(BackendError::new(
            format!("fred: unexpected script reply {other:?}"),
            None,
        )),
    }
}

#[async_trait]
impl ScriptConn for FredConn {
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError> {
        let (k, a) = request(keys, args);
        match self
            .client
            .evalsha::<Value, _, _, _>(self.sha.clone(), k, a)
            .await
        {
            Ok(r) => reply(r),
            // The server lost its scripts: EVAL sends the text and caches it again.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let (k, a) = request(keys, args);
                self.client
                    .eval::<Value, _, _, _>(POLICY_SCRIPT, k, a)
                    .await
                    .map_err(|e| backend_error("fred", e))
                    .and_then(reply)
            }
            Err(e) => Err(backend_error("fred", e)),
        }
    }
}
