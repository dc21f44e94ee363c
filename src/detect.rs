//! Which intake to send to: the configured site or endpoint, or the site that owns the key.
//!
//! When neither `site`, `endpoint` nor `DD_SITE` is given, a background thread started at Init
//! asks `GET https://api.<site>/api/v1/validate` on every commercial site at once (never the
//! government sites) and picks the first, in [`crate::site::SITES`] order, that accepts the
//! key. Flushes wait for the answer (RETRY until known). When every site refuses the key the
//! target becomes [`Target::Failed`]; when some could not be asked (timeout, network), the
//! probe is tried again later. The same probe explains a 403 from a configured site.

use crate::log::{self, Level};
use crate::options::{Config, Destination};
use crate::send::{Client, Validation};
use crate::site::Site;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a validation probe may take (shorter when `timeout` is shorter).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before probing again when some sites could not be asked.
pub const REPROBE_AFTER: Duration = Duration::from_secs(30);

/// A site that can be probed: its name for messages, its API base and its intake URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Name for log lines and for the `site` advice (`ap1.datadoghq.com`).
    pub name: String,
    /// Where `/api/v1/validate` lives.
    pub api_base: String,
    /// Where logs go.
    pub intake_url: String,
}

impl Candidate {
    fn of(site: Site) -> Candidate {
        Candidate {
            name: site.domain.to_string(),
            api_base: site.api_url(),
            intake_url: site.intake_url(),
        }
    }
}

/// The sites auto-detection probes: the commercial sites, or the test override.
pub fn candidates(cfg: &Config) -> Vec<Candidate> {
    match &cfg.probe_override {
        Some(list) => list
            .iter()
            .map(|(name, url)| Candidate {
                name: name.clone(),
                api_base: url.clone(),
                intake_url: format!("{url}/api/v2/logs"),
            })
            .collect(),
        None => Site::commercial().map(Candidate::of).collect(),
    }
}

/// Where flushes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Send here; `site` names it for messages.
    Ready {
        /// Intake URL.
        url: String,
        /// Site name (or the endpoint's host).
        site: String,
    },
    /// Auto-detection has not answered yet.
    Pending,
    /// No site accepts the key.
    Failed,
}

/// The probe's verdict over a set of candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The first candidate (in list order) that accepted the key.
    Found(Candidate),
    /// Every candidate refused the key.
    NoneAccepts,
    /// None accepted, and some could not be asked.
    Unknown(String),
}

/// Asks every candidate at once whether it accepts the key.
pub fn probe(client: &Client, list: &[Candidate], timeout: Duration) -> Probe {
    let answers: Vec<Validation> = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .iter()
            .map(|c| s.spawn(move || client.validate(&c.api_base, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Validation::Unknown("probe panicked".into()))
            })
            .collect()
    });
    if let Some(i) = answers.iter().position(|a| *a == Validation::Valid) {
        return Probe::Found(list[i].clone());
    }
    let unknown: Vec<String> = list
        .iter()
        .zip(&answers)
        .filter_map(|(c, a)| match a {
            Validation::Unknown(why) => Some(format!("{}: {why}", c.name)),
            _ => None,
        })
        .collect();
    if unknown.is_empty() {
        Probe::NoneAccepts
    } else {
        Probe::Unknown(unknown.join("; "))
    }
}

/// Resolves and holds the instance's target.
#[derive(Debug)]
pub struct Resolver {
    target: RwLock<Target>,
    candidates: Vec<Candidate>,
    probe_timeout: Duration,
    last_probe: Mutex<Option<Instant>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Cached answer for the 403 explanation: `Some(None)` = valid nowhere.
    explained_403: Mutex<Option<Option<String>>>,
}

impl Resolver {
    /// Builds the resolver; a configured site or endpoint is ready at once.
    pub fn new(cfg: &Config) -> Resolver {
        let target = match &cfg.destination {
            Destination::Site(s) => Target::Ready {
                url: s.intake_url(),
                site: s.domain.to_string(),
            },
            Destination::Endpoint(url) => Target::Ready {
                url: url.clone(),
                site: crate::send::host_of(url).to_string(),
            },
            Destination::AutoDetect => Target::Pending,
        };
        Resolver {
            target: RwLock::new(target),
            candidates: candidates(cfg),
            probe_timeout: cfg.timeout.min(PROBE_TIMEOUT),
            last_probe: Mutex::new(None),
            thread: Mutex::new(None),
            explained_403: Mutex::new(None),
        }
    }

    /// The current target.
    pub fn target(&self) -> Target {
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts the background probe if the target is pending and no probe ran recently.
    pub fn start(self: &Arc<Self>, client: Arc<Client>, name: Arc<str>) {
        if self.target() != Target::Pending {
            return;
        }
        {
            let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REPROBE_AFTER) {
                return;
            }
            *last = Some(Instant::now());
        }
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("dd-site-probe".into())
            .spawn(move || me.run_probe(&client, &name));
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => log::write(
                Level::Error,
                "datadog_logs",
                &format!("cannot start the site probe thread: {e}"),
            ),
        }
    }

    fn run_probe(&self, client: &Client, name: &str) {
        let names: Vec<&str> = self.candidates.iter().map(|c| c.name.as_str()).collect();
        let verdict = probe(client, &self.candidates, self.probe_timeout);
        let new = match verdict {
            Probe::Found(c) => {
                log::write(
                    Level::Info,
                    name,
                    &format!(
                        "site auto-detection: the API key belongs to {}; sending to {} (set `site` to skip this probe)",
                        c.name, c.intake_url
                    ),
                );
                Target::Ready {
                    url: c.intake_url,
                    site: c.name,
                }
            }
            Probe::NoneAccepts => {
                log::write(
                    Level::Error,
                    name,
                    &format!(
                        "site auto-detection: no Datadog site accepts the API key (asked {}); check the key, or set `site` to your account's site (e.g. `site ap1`) and `apikey` to a key from it",
                        names.join(", ")
                    ),
                );
                Target::Failed
            }
            Probe::Unknown(why) => {
                log::write(
                    Level::Warn,
                    name,
                    &format!(
                        "site auto-detection: no site accepted the API key yet and some could not be asked ({why}); retrying in {}s. Set `site` to skip the probe",
                        REPROBE_AFTER.as_secs()
                    ),
                );
                Target::Pending
            }
        };
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// After a 403 from `site`: the name of another site where the key is valid (probed once,
    /// then cached), or `None` when it is valid nowhere or the probe had no answer.
    pub fn explain_403(&self, client: &Client, site: &str) -> Option<String> {
        let mut cached = self.explained_403.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(answer) = cached.as_ref() {
            return answer.clone();
        }
        let others: Vec<Candidate> = self
            .candidates
            .iter()
            .filter(|c| c.name != site)
            .cloned()
            .collect();
        let answer = match probe(client, &others, self.probe_timeout) {
            Probe::Found(c) => Some(Some(c.name)),
            Probe::NoneAccepts => Some(None),
            Probe::Unknown(_) => None,
        };
        *cached = answer.clone();
        answer.flatten()
    }

    /// Waits for a running probe to end (it is bounded by the probe timeout).
    pub fn join(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The advice for a site name: its short name when it is a Datadog site.
pub fn site_advice(name: &str) -> String {
    match Site::parse(name) {
        Some(s) => format!("set `site {}`", s.short),
        None => format!("set `site {name}`"),
    }
}
