use super::*;
use std::collections::HashMap;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, OptionError> {
    cfg_env(pairs, &[])
}

fn cfg_env(pairs: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, OptionError> {
    let p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let e: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| p.get(k).cloned(), |k| e.get(k).cloned())
}

#[test]
fn defaults() {
    let c = cfg(&[("apikey", KEY)]).unwrap();
    assert_eq!(c.api_key.expose(), KEY);
    assert_eq!(c.destination, Destination::AutoDetect);
    assert_eq!(c.message_key, "log");
    assert_eq!(c.date_key.as_deref(), Some("timestamp"));
    assert_eq!(c.tag_key, None);
    assert!(!c.ecs);
    assert_eq!(c.compression, Compression::Zstd(DEFAULT_ZSTD_LEVEL));
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert!(c.connect_timeout() < c.timeout);
    assert_eq!(c.max_concurrency, DEFAULT_MAX_CONCURRENCY);
}

#[test]
fn api_key_sources_in_order() {
    assert_eq!(cfg(&[("api_key", KEY)]).unwrap().api_key.expose(), KEY);
    let env = [("DD_API_KEY", "fromenv")];
    assert_eq!(cfg_env(&[], &env).unwrap().api_key.expose(), "fromenv");
    assert_eq!(
        cfg_env(&[("apikey", KEY)], &env).unwrap().api_key.expose(),
        KEY
    );
    let dir = std::env::temp_dir().join(format!("fbdd-key-{}", std::process::id()));
    std::fs::write(&dir, format!("  {KEY}\n")).unwrap();
    let path = dir.to_str().unwrap();
    assert_eq!(
        cfg_env(&[("apikey_file", path)], &env)
            .unwrap()
            .api_key
            .expose(),
        KEY
    );
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn missing_empty_and_unreadable_keys_fail() {
    let e = cfg(&[]).unwrap_err();
    assert_eq!(e.option, "apikey");
    let e = cfg(&[("apikey_file", "/nonexistent/key")]).unwrap_err();
    assert_eq!(e.option, "apikey_file");
    assert!(e.to_string().contains("/nonexistent/key"));
    let e = cfg_env(&[], &[("DD_API_KEY", "   ")]).unwrap_err();
    assert!(e.to_string().contains("empty"));
    let e = cfg(&[("apikey", "abc def")]).unwrap_err();
    assert!(!e.to_string().contains("abc def"));
}

#[test]
fn site_option_env_and_endpoint() {
    let c = cfg(&[("apikey", KEY), ("site", "AP1")]).unwrap();
    assert_eq!(
        c.destination,
        Destination::Site(Site::parse("ap1").unwrap())
    );
    let c = cfg_env(&[("apikey", KEY)], &[("DD_SITE", "datadoghq.eu")]).unwrap();
    assert_eq!(
        c.destination,
        Destination::Site(Site::parse("eu1").unwrap())
    );
    let c = cfg_env(
        &[("apikey", KEY), ("site", "us5")],
        &[("DD_SITE", "datadoghq.eu")],
    )
    .unwrap();
    assert_eq!(
        c.destination,
        Destination::Site(Site::parse("us5").unwrap())
    );
    let c = cfg(&[("apikey", KEY), ("endpoint", "http://127.0.0.1:8080")]).unwrap();
    assert_eq!(
        c.destination,
        Destination::Endpoint("http://127.0.0.1:8080/api/v2/logs".into())
    );
    let c = cfg(&[("apikey", KEY), ("endpoint", "https://relay:9/custom/path")]).unwrap();
    assert_eq!(
        c.destination,
        Destination::Endpoint("https://relay:9/custom/path".into())
    );
}

#[test]
fn unknown_site_lists_every_site() {
    let e = cfg(&[("apikey", KEY), ("site", "datadoghq.co")]).unwrap_err();
    assert_eq!(e.option, "site");
    let text = e.to_string();
    assert!(text.contains("'datadoghq.co'"));
    for s in crate::config::sites::SITES {
        assert!(text.contains(s.domain) && text.contains(s.short), "{text}");
    }
    let e = cfg_env(&[("apikey", KEY)], &[("DD_SITE", "mars")]).unwrap_err();
    assert!(e.option.contains("DD_SITE"));
}

#[test]
fn each_bad_value_names_option_value_and_accepted() {
    let cases: &[(&str, &str, &str)] = &[
        ("endpoint", "ftp://x", "http://"),
        ("endpoint", "127.0.0.1:8080", "http://"),
        ("provider", "eks", "ecs"),
        ("include_tag_key", "maybe", "true"),
        ("compress", "lz4", "zstd, gzip or none"),
        ("compression_level", "0", "1-9 for gzip, 1-19 for zstd"),
        ("compression_level", "20", "1-9 for gzip, 1-19 for zstd"),
        ("compression_level", "fast", "1-9 for gzip, 1-19 for zstd"),
        ("timeout", "soon", "duration"),
        ("timeout", "-5s", "duration"),
        ("timeout", "0", "duration"),
        ("proxy", "socks5://p:1080", "HTTP proxy URL"),
        ("tls_ca_file", "/nonexistent.pem", "readable PEM"),
        ("resume_file", "/nonexistent/state", "writable directory"),
        ("resume_file", "/tmp", "one per [OUTPUT]: it is a directory"),
        ("resume_file", "datadog.resume", "an absolute file path"),
        ("tls_verify", "maybe", "on/true/yes or off/false/no"),
        ("max_concurrency", "0", "1 to 64"),
        ("site_probe", "nourl", "name=http"),
    ];
    for (opt, val, accepted) in cases {
        let e = cfg(&[("apikey", KEY), (opt, val)]).unwrap_err();
        assert_eq!(&e.option, opt, "{e}");
        let text = e.to_string();
        assert!(text.contains(&format!("'{val}'")), "{text}");
        assert!(text.contains(accepted), "{text}");
        assert!(!text.contains(KEY));
    }
}

#[test]
fn compression_level_is_read_per_codec() {
    let c = |pairs: &[(&str, &str)]| {
        let mut all = vec![("apikey", KEY)];
        all.extend_from_slice(pairs);
        cfg(&all)
    };
    assert_eq!(
        c(&[("compress", "gzip")]).unwrap().compression,
        Compression::Gzip(DEFAULT_GZIP_LEVEL)
    );
    assert_eq!(
        c(&[("compress", "ZSTD")]).unwrap().compression,
        Compression::Zstd(DEFAULT_ZSTD_LEVEL)
    );
    assert_eq!(
        c(&[("compression_level", "19")]).unwrap().compression,
        Compression::Zstd(19)
    );
    assert_eq!(
        c(&[("compress", "gzip"), ("compression_level", "9")])
            .unwrap()
            .compression,
        Compression::Gzip(9)
    );
    let e = c(&[("compress", "gzip"), ("compression_level", "10")]).unwrap_err();
    assert_eq!(e.option, "compression_level");
    assert!(e.to_string().contains("1-9 for gzip, 1-19 for zstd"), "{e}");
    assert_eq!(
        c(&[("compress", "none"), ("compression_level", "5")])
            .unwrap()
            .compression,
        Compression::None
    );
}

#[test]
fn mapping_options() {
    let c = cfg(&[
        ("apikey", KEY),
        ("dd_service", "web"),
        ("dd_source", "nginx"),
        ("dd_hostname", "h1"),
        ("dd_tags", " env:prod, ,team:a ,"),
        ("dd_message_key", "msg"),
        ("provider", "ECS"),
        ("include_tag_key", "On"),
        ("json_date_key", "off"),
        ("compress", "none"),
        ("timeout", "1500ms"),
    ])
    .unwrap();
    assert_eq!(c.service.as_deref(), Some("web"));
    assert_eq!(c.source.as_deref(), Some("nginx"));
    assert_eq!(c.hostname.as_deref(), Some("h1"));
    assert_eq!(c.tags, ["env:prod", "team:a"]);
    assert_eq!(c.message_key, "msg");
    assert!(c.ecs);
    assert_eq!(c.tag_key.as_deref(), Some("tagkey"));
    assert_eq!(c.date_key, None);
    assert_eq!(c.compression, Compression::None);
    assert_eq!(c.timeout, Duration::from_millis(1500));
    let c = cfg(&[
        ("apikey", KEY),
        ("include_tag_key", "true"),
        ("tag_key", "fluent_tag"),
        ("json_date_key", "ts"),
    ])
    .unwrap();
    assert_eq!(c.tag_key.as_deref(), Some("fluent_tag"));
    assert_eq!(c.date_key.as_deref(), Some("ts"));
}

#[test]
fn tls_verify_is_on_unless_turned_off() {
    assert!(cfg(&[("apikey", KEY)]).unwrap().tls_verify);
    assert!(
        cfg(&[("apikey", KEY), ("tls_verify", "Yes")])
            .unwrap()
            .tls_verify
    );
    assert!(
        !cfg(&[("apikey", KEY), ("tls_verify", "off")])
            .unwrap()
            .tls_verify
    );
}

#[test]
fn debug_never_shows_the_key() {
    let c = cfg(&[("apikey", KEY)]).unwrap();
    assert!(!format!("{c:?}").contains(KEY));
}

#[test]
fn debug_shows_every_field_but_no_secret() {
    let c = cfg(&[
        ("apikey", KEY),
        ("proxy", "http://alice:S3cretPr0xyPass@proxy.internal:3128"),
        ("site_probe", "us1=http://127.0.0.1:9"),
    ])
    .unwrap();
    let text = format!("{c:?}");
    assert!(
        !text.contains(KEY) && !text.contains("S3cretPr0xyPass"),
        "{text}"
    );
    assert!(text.contains("***@proxy.internal:3128"), "{text}");
    assert!(
        text.contains("probe_override") && text.contains("tls_ca_certs"),
        "{text}"
    );
}

#[test]
fn bad_url_values_are_echoed_without_their_password() {
    for (opt, val) in [
        ("proxy", "http://alice:S3cretPr0xyPass@[bad host:99999"),
        ("proxy", "alice:S3cretPr0xyPass@proxy:3128"),
        ("endpoint", "https://alice:S3cretPr0xyPass@relay:8443/x"),
        ("site_probe", "us1=http://a:S3cretPr0xyPass@h:1,nourl"),
    ] {
        let e = cfg(&[("apikey", KEY), (opt, val)]).unwrap_err();
        assert_eq!(e.option, opt);
        let text = e.to_string();
        assert!(!text.contains("S3cretPr0xyPass"), "{text}");
        assert!(text.contains("***@"), "{text}");
    }
}

#[test]
fn proxy_is_parsed_once_into_config() {
    let c = cfg(&[("apikey", KEY), ("proxy", " http://proxy.internal:3128 ")]).unwrap();
    let p = c.proxy.unwrap().to_ureq();
    assert_eq!((p.host(), p.port()), ("proxy.internal", 3128));
}

#[test]
fn compression_level_is_checked_per_codec() {
    let c = |pairs: &[(&str, &str)]| {
        let mut all = vec![("apikey", KEY)];
        all.extend_from_slice(pairs);
        cfg(&all)
    };
    assert_eq!(
        c(&[("compress", "zstd")]).unwrap().compression,
        Compression::Zstd(DEFAULT_ZSTD_LEVEL)
    );
    assert_eq!(
        c(&[("compress", "ZSTD"), ("compression_level", "19")])
            .unwrap()
            .compression,
        Compression::Zstd(19)
    );
    assert_eq!(
        c(&[("compression_level", "9")]).unwrap().compression,
        Compression::Zstd(9)
    );
    for pairs in [
        &[("compression_level", "20")][..],
        &[("compress", "gzip"), ("compression_level", "10")],
        &[("compress", "zstd"), ("compression_level", "20")],
    ] {
        let e = c(pairs).unwrap_err();
        assert_eq!(e.option, "compression_level", "{e}");
        assert!(e.to_string().contains("1-9 for gzip, 1-19 for zstd"), "{e}");
    }
}

#[test]
fn every_error_uses_the_tables_accepted_text() {
    for spec in OPTIONS.iter().filter(|o| !o.accepted.is_empty()) {
        let bad = (spec.name, "\u{1}bad value");
        let e = match spec.name {
            "apikey" | "apikey_file" => cfg(&[bad]),
            _ => cfg(&[("apikey", KEY), bad]),
        };
        let e = e.expect_err(spec.name);
        assert!(e.accepted.starts_with(spec.accepted), "{e}");
    }
}

#[test]
fn the_options_this_module_names_are_in_the_table() {
    for name in [
        "apikey",
        "api_key",
        "apikey_file",
        "site",
        "compression_level",
    ] {
        assert!(option(name).is_some(), "{name}");
    }
    assert_eq!(spec("compression_level").name, "compression_level");
    assert!(option("dd_typo").is_none());
}

#[test]
fn warnings_for_plain_http_to_a_remote_host_and_tls_verify_off() {
    let w = |pairs: &[(&str, &str)]| {
        let mut all = vec![("apikey", KEY)];
        all.extend_from_slice(pairs);
        cfg(&all).unwrap().warnings()
    };
    assert!(w(&[]).is_empty());
    for local in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:2",
    ] {
        assert!(w(&[("endpoint", local)]).is_empty(), "{local}");
    }
    assert!(w(&[("endpoint", "https://relay.internal:8443")]).is_empty());
    let remote = w(&[("endpoint", "http://relay.internal:8080")]);
    assert_eq!(remote.len(), 1);
    assert!(remote[0].contains("relay.internal") && remote[0].contains("unencrypted"));
    assert_eq!(w(&[("endpoint", "http://10.0.0.1")]).len(), 1);
    assert_eq!(
        w(&[("tls_verify", "off")]),
        ["tls_verify is off: the intake's certificate is not checked"]
    );
}
