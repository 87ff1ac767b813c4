//! A minimal blocking Redis client over `std::net`, just enough for `xtask` to
//! see whether a server is up (`PING`, `INFO`, `CLUSTER INFO`).
//!
//! Commands are sent in Redis's inline form (`PING\r\n`); replies are read as
//! RESP2 simple strings, errors, integers and bulk strings. No dependency and
//! no `redis-cli` process per poll, so readiness checks cost microseconds.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

/// Sends the inline `command` to the server on `127.0.0.1:port` and returns
/// its reply as text. A Redis error reply (`-ERR ...`, `-LOADING ...`) is an
/// `Err`, like a refused connection or a timeout.
pub(crate) fn request(port: u16, command: &str, timeout: Duration) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    read_reply(&mut BufReader::new(stream))
}

/// Reads one RESP2 reply that is not an array.
pub(crate) fn read_reply(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(kind) = line.chars().next() else {
        return Err(invalid(line));
    };
    let rest = &line[1..];
    match kind {
        '+' | ':' => Ok(rest.to_owned()),
        '-' => Err(io::Error::other(format!("redis error: {rest}"))),
        '$' => {
            let len: i64 = rest.parse().map_err(|_| invalid(line))?;
            let Ok(len) = usize::try_from(len) else {
                // `$-1`: a nil reply.
                return Ok(String::new());
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|_| invalid(line))
        }
        _ => Err(invalid(line)),
    }
}

fn invalid(line: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from redis: {line:?}"),
    )
}

/// The value of `key` in an `INFO` or `CLUSTER INFO` reply (`key:value` lines).
pub(crate) fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// Whether a `CLUSTER INFO` reply says the cluster serves requests
/// (`cluster_state:ok`).
pub(crate) fn cluster_state_ok(cluster_info: &str) -> bool {
    info_field(cluster_info, "cluster_state") == Some("ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bytes: &str) -> io::Result<String> {
        read_reply(&mut bytes.as_bytes())
    }

    #[test]
    fn replies() {
        assert_eq!(reply("+PONG\r\n").unwrap(), "PONG");
        assert_eq!(reply(":42\r\n").unwrap(), "42");
        assert_eq!(reply("$5\r\nhello\r\n").unwrap(), "hello");
        assert_eq!(reply("$0\r\n\r\n").unwrap(), "");
        assert_eq!(reply("$-1\r\n").unwrap(), "");
        assert_eq!(reply("$8\r\na\r\nb:c\r\n\r\n").unwrap(), "a\r\nb:c\r\n");
        let err = reply("-LOADING Redis is loading\r\n").unwrap_err();
        assert!(err.to_string().contains("LOADING"), "{err}");
        assert!(reply("").is_err());
        assert!(reply("*1\r\n$4\r\nPING\r\n").is_err());
        assert!(reply("$9\r\nshort\r\n").is_err());
    }

    #[test]
    fn cluster_info_parsing() {
        let ok = "cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
        assert!(cluster_state_ok(ok));
        assert_eq!(info_field(ok, "cluster_slots_assigned"), Some("16384"));
        assert!(!cluster_state_ok(
            "cluster_state:fail\r\ncluster_slots_assigned:0\r\n"
        ));
        assert!(!cluster_state_ok("cluster_state_ok:1\r\n"));
        assert!(!cluster_state_ok(""));
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n";
        assert_eq!(info_field(info, "process_id"), Some("4242"));
        assert_eq!(info_field(info, "# Server"), None);
    }
}
