//! The command line and its environment-variable defaults.

pub(crate) const USAGE: &str = "\
mock_intake: mock Datadog log intake for tests

USAGE: mock_intake [--addr HOST:PORT] [--api-key KEY] [--print] [--quiet] [--no-zstd]
                   [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT  address to bind (env MOCK_INTAKE_ADDR, default 127.0.0.1:8080; port 0 = any)
  --api-key KEY     the only accepted DD-API-KEY (env MOCK_INTAKE_API_KEY; default: any non-empty key)
  --print           print every accepted log object as a JSON line on stdout (env MOCK_INTAKE_PRINT=1)
  --quiet           do not log requests on stderr (env MOCK_INTAKE_QUIET=1)
  --tls-cert PEM    also serve TLS on the same port with this certificate chain (needs --tls-key)
  --tls-key PEM     the private key of --tls-cert
  --no-zstd         answer 415 to Content-Encoding: zstd, as an intake without zstd would (env MOCK_INTAKE_NO_ZSTD=1)
  --help            show this help

Control API: POST /mock/rules {\"rules\":[...]}, POST /mock/reset, GET /mock/received";

/// The settings of one run.
pub(crate) struct Config {
    pub(crate) addr: String,
    pub(crate) api_key: Option<String>,
    pub(crate) print: bool,
    pub(crate) quiet: bool,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    /// Refuse `Content-Encoding: zstd` with 415.
    pub(crate) no_zstd: bool,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Parses the command line (environment variables give the defaults).
/// `Ok(None)` means `--help` was requested.
pub(crate) fn parse_config(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: std::env::var("MOCK_INTAKE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into()),
        api_key: std::env::var("MOCK_INTAKE_API_KEY").ok(),
        print: env_flag("MOCK_INTAKE_PRINT"),
        quiet: env_flag("MOCK_INTAKE_QUIET"),
        tls_cert: None,
        tls_key: None,
        no_zstd: env_flag("MOCK_INTAKE_NO_ZSTD"),
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        match name.as_str() {
            "--addr" => config.addr = value("--addr")?,
            "--api-key" => config.api_key = Some(value("--api-key")?),
            "--print" => config.print = true,
            "--quiet" => config.quiet = true,
            "--tls-cert" => config.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => config.tls_key = Some(value("--tls-key")?),
            "--no-zstd" => config.no_zstd = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    config.api_key = config
        .api_key
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    Ok(Some(config))
}
