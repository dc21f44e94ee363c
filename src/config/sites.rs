//! The Datadog sites: their domains, short names, and the intake and API hosts they imply.
//!
//! An account lives on exactly one site, and a key from one site is refused (HTTP 403) by every
//! other, so choosing the site is the first thing that must be right.

/// One Datadog site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Short name as Datadog's docs write it (`us1`, `ap1`, ...).
    pub short: &'static str,
    /// The site's domain (`datadoghq.com`, `ap1.datadoghq.com`, ...).
    pub domain: &'static str,
    /// Government sites are never probed with a commercial key.
    pub government: bool,
}

/// Every Datadog site, commercial first; US1 is the default.
pub(crate) const SITES: [Site; 9] = [
    site("us1", "datadoghq.com", false),
    site("us3", "us3.datadoghq.com", false),
    site("us5", "us5.datadoghq.com", false),
    site("eu1", "datadoghq.eu", false),
    site("ap1", "ap1.datadoghq.com", false),
    site("ap2", "ap2.datadoghq.com", false),
    site("uk1", "uk1.datadoghq.com", false),
    site("us1-fed", "ddog-gov.com", true),
    site("us2-fed", "us2.ddog-gov.com", true),
];

const fn site(short: &'static str, domain: &'static str, government: bool) -> Site {
    Site {
        short,
        domain,
        government,
    }
}

impl Site {
    /// Finds a site by domain or short name, case-insensitively; surrounding blanks and a
    /// trailing dot are ignored.
    pub fn parse(text: &str) -> Option<Site> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        SITES
            .iter()
            .find(|s| s.short == t || s.domain == t)
            .copied()
    }

    /// The logs intake URL: `https://http-intake.logs.<site>/api/v2/logs`.
    pub fn intake_url(&self) -> String {
        format!("https://http-intake.logs.{}/api/v2/logs", self.domain)
    }

    /// The API base URL, where keys are validated: `https://api.<site>`.
    pub fn api_url(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// The commercial sites, the only ones auto-detection may probe.
    pub fn commercial() -> impl Iterator<Item = Site> {
        SITES.iter().copied().filter(|s| !s.government)
    }
}

/// The accepted values of `site`, for error messages.
pub(crate) fn accepted() -> String {
    let names: Vec<String> = SITES
        .iter()
        .map(|s| format!("{} ({})", s.domain, s.short))
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_nine_sites_parse_by_domain_and_short_name() {
        let expected = [
            ("us1", "datadoghq.com"),
            ("us3", "us3.datadoghq.com"),
            ("us5", "us5.datadoghq.com"),
            ("eu1", "datadoghq.eu"),
            ("ap1", "ap1.datadoghq.com"),
            ("ap2", "ap2.datadoghq.com"),
            ("uk1", "uk1.datadoghq.com"),
            ("us1-fed", "ddog-gov.com"),
            ("us2-fed", "us2.ddog-gov.com"),
        ];
        for (short, domain) in expected {
            assert_eq!(Site::parse(short).unwrap().domain, domain);
            assert_eq!(Site::parse(domain).unwrap().short, short);
            assert_eq!(Site::parse(&short.to_uppercase()).unwrap().domain, domain);
            assert_eq!(Site::parse(&domain.to_uppercase()).unwrap().short, short);
        }
        assert_eq!(SITES.len(), 9);
    }

    #[test]
    fn intake_and_api_urls() {
        let ap1 = Site::parse("AP1").unwrap();
        assert_eq!(
            ap1.intake_url(),
            "https://http-intake.logs.ap1.datadoghq.com/api/v2/logs"
        );
        assert_eq!(ap1.api_url(), "https://api.ap1.datadoghq.com");
        assert_eq!(
            Site::parse("ddog-gov.com").unwrap().intake_url(),
            "https://http-intake.logs.ddog-gov.com/api/v2/logs"
        );
    }

    #[test]
    fn unknown_sites_are_refused() {
        for bad in [
            "",
            "datadog.com",
            "eu",
            "http-intake.logs.datadoghq.com",
            "ddog-gov.datadoghq.com",
        ] {
            assert!(Site::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn government_sites_are_never_probed() {
        let probed: Vec<&str> = Site::commercial().map(|s| s.short).collect();
        assert_eq!(probed, ["us1", "us3", "us5", "eu1", "ap1", "ap2", "uk1"]);
    }
}
