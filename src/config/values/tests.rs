use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("2h"), None);
    assert_eq!(parse_duration("x"), None);
}

#[test]
fn userinfo_redaction() {
    assert_eq!(
        redact_url_userinfo("http://alice:pw@[bad host:99999"),
        "http://***@[bad host:99999"
    );
    assert_eq!(
        redact_url_userinfo("https://u:p@h:1/a@b?c@d"),
        "https://***@h:1/a@b?c@d"
    );
    assert_eq!(redact_url_userinfo("u:p@h:3128"), "***@h:3128");
    assert_eq!(
        redact_url_userinfo("a=http://u:p@h,b=https://x@y/"),
        "a=http://***@h,b=https://***@y/"
    );
    assert_eq!(redact_url_userinfo("http://h:1/x"), "http://h:1/x");
    assert_eq!(redact_url_userinfo("plain"), "plain");
}
