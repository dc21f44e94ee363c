//! `mock_intake`: a stand-in for the Datadog log intake (`POST /api/v2/logs`).
//!
//! Used by the integration tests (spawned as a child process, see
//! `test-support/src/mock.rs`) and by docker compose. It validates requests the
//! way Datadog does (API key, compression, size and entry limits, JSON shape),
//! records the accepted log objects, and can be told over HTTP to inject
//! faults (error statuses, delays) so retry behaviour can be tested.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p mock-intake -- --addr 127.0.0.1:8080 --print
//! ```
//!
//! The first line on stdout is always `mock_intake listening on http://IP:PORT`
//! (the real port when `--addr` used port 0).
//!
//! With `--tls-cert PEM --tls-key PEM` the same port also speaks TLS (tokio-rustls): a
//! connection whose first byte is a TLS handshake record is served over TLS, any other as
//! plain HTTP, so `https://IP:PORT` is the intake under test while the control API stays on
//! `http://IP:PORT`. A second stdout line then says `mock_intake serving TLS on https://IP:PORT`.
//!
//! Endpoints:
//! - `POST /api/v2/logs`: the intake. 202 `{}` on success; 401 (no key),
//!   403 (wrong key), 415 (unknown `Content-Encoding`; `zstd` too with `--no-zstd`),
//!   400 (bad body,
//!   duplicate keys), 413 (> 5 000 000 bytes decompressed or > 1000 entries).
//! - `GET /api/v1/validate`: 200 `{"valid":true}` or 403.
//! - `POST /mock/rules` with `{"rules":[RULE,...]}`: replace the fault rules.
//! - `POST /mock/reset`: clear rules, recorded objects and counters.
//! - `GET /mock/received`: everything recorded so far, as JSON.
//! - `GET /mock/health`: 200 `{"status":"ok"}`.
//!
//! A RULE has optional fields `status`, `delay_ms`, `times`, `every`, `after`,
//! `over_bytes`, `poison`, `encoding`, `path` (default `/api/v2/logs`) and `body`; see
//! [`rules::Rule`]. The API key is never echoed or logged.
//!
//! The HTTP layer is hyper (HTTP/1.1 with keep-alive) on a multi-threaded
//! tokio runtime: every connection is its own task, so any number of clients
//! are served at once; decompression and JSON parsing run on tokio's blocking
//! pool and rule delays are timers, so neither holds up other connections.

mod body;
mod config;
mod intake;
mod rules;
mod server;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use crate::config::{USAGE, parse_config};
use crate::intake::{Intake, State};
use crate::server::{serve, tls_acceptor};

// ---------------------------------------------------------------- process setup

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe exit; also makes PID 1 in a container stop promptly.
    unsafe { libc::_exit(0) };
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only calls `_exit`, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

fn main() {
    let config = match parse_config(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(msg) => {
            eprintln!("mock_intake: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match std::net::TcpListener::bind(config.addr.as_str())
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock_intake: cannot listen on {}: {e}", config.addr);
            std::process::exit(1);
        }
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => match tls_acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("mock_intake: {e}");
                std::process::exit(2);
            }
        },
        _ => None,
    };
    install_signal_handlers();
    let bound = listener
        .local_addr()
        .map_or_else(|_| config.addr.clone(), |a| a.to_string());
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "mock_intake listening on http://{bound}");
        if tls.is_some() {
            let _ = writeln!(out, "mock_intake serving TLS on https://{bound}");
        }
        let _ = out.flush();
    }
    let intake = Arc::new(Intake {
        config,
        state: Mutex::new(State::default()),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("mock-intake")
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock_intake: cannot start worker threads: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, intake, tls).await,
            Err(e) => {
                eprintln!("mock_intake: cannot listen on {bound}: {e}");
                std::process::exit(1);
            }
        }
    });
}
