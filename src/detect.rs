//! Which intake to send to: the configured site or endpoint, or the site that owns the key.
//!
//! When neither `site`, `endpoint` nor `DD_SITE` is given, a background thread started at Init
//! asks every commercial site at once (never the government sites) whether it owns the key,
//! in two ways per site: `GET https://api.<site>/api/v1/validate` and an empty
//! `POST https://http-intake.logs.<site>/api/v2/logs` (body `[]`, no log in it). A site owns
//! the key when either answer accepts it; see [`Client::probe_intake`] for how an intake
//! answer is read. The intake probe is what finds the site where only the intake hosts are
//! reachable (egress allowlists) or where `api.<site>` rate-limits the validate call.
//!
//! Until the site is known a flush waits for it on its own thread ([`Resolver::wait_state`])
//! instead of asking Fluent Bit to retry, so waiting spends none of the `Retry_Limit` budget.
//! A round with no verdict for the owner ([`Probe::Unknown`]) and a round where every site
//! refuses the key ([`Probe::NoneAccepts`]) are both probed again, after a backoff that
//! doubles from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]; each change of the outcome is one log
//! line. The same probe explains a 403 from a configured site.

use crate::config::options::{Config, Destination};
use crate::config::sites::Site;
use crate::deliver::client::{Client, Validation};
use crate::observe::events::{Event, Events};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest one probe request may take (shorter when `timeout` is shorter).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause before probing again after a round without a site.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest pause between two probe rounds.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The backoff under the test option `site_probe`, so tests of re-probing stay short.
const TEST_BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(400));

/// A site that can be probed: its name for messages, its API base and its intake URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Name for log lines and for the `site` advice (`ap1.datadoghq.com`).
    pub name: String,
    /// Where `/api/v1/validate` lives.
    pub api_base: String,
    /// Where logs go (and where the empty intake probe is posted).
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
///
/// A `site_probe` entry is `name=BASE` (one base URL serving both `/api/v1/validate` and
/// `/api/v2/logs`) or `name=API_BASE|INTAKE_BASE` (two hosts, as Datadog has).
pub(crate) fn candidates(cfg: &Config) -> Vec<Candidate> {
    match &cfg.probe_override {
        Some(list) => list
            .iter()
            .map(|(name, url)| {
                let (api, intake) = url.split_once('|').unwrap_or((url, url));
                let intake = intake.trim().trim_end_matches('/');
                Candidate {
                    name: name.clone(),
                    api_base: api.trim().trim_end_matches('/').to_string(),
                    intake_url: format!("{intake}/api/v2/logs"),
                }
            })
            .collect(),
        None => Site::commercial().map(Candidate::of).collect(),
    }
}

/// Where the instance's site stands: where flushes go, once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SiteState {
    /// Send here; `site` names it for messages.
    Ready {
        /// Intake URL.
        url: String,
        /// Site name (or the endpoint's host).
        site: String,
    },
    /// Auto-detection has no answer yet (still asking, or no verdict so far).
    Pending,
    /// The last probe round found that no site accepts the key (probed again later).
    Failed,
}

/// The probe's verdict over a set of candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The first candidate (in list order) that accepted the key.
    Found(Candidate),
    /// Every candidate refused the key.
    NoneAccepts,
    /// None accepted, and some could not be asked.
    Unknown(String),
}

/// One site's verdict from its two answers: accepted by either, else refused by either, else
/// no verdict. (A key belongs to one site; its API and intake cannot both answer and differ
/// except while a key is being created or revoked, when "accepted" is the useful reading.)
fn combine(validate: Validation, intake: Validation) -> Validation {
    match (validate, intake) {
        (Validation::Valid, _) | (_, Validation::Valid) => Validation::Valid,
        (Validation::Invalid, _) | (_, Validation::Invalid) => Validation::Invalid,
        (Validation::Unknown(a), Validation::Unknown(b)) => {
            Validation::Unknown(format!("validate {a}, intake {b}"))
        }
    }
}

/// Asks every candidate at once, through its API and its intake, whether it accepts the key.
/// Takes at most `timeout` (each request is bounded by it; all run in parallel).
pub(crate) fn probe(client: &Client, list: &[Candidate], timeout: Duration) -> Probe {
    let answers: Vec<Validation> = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .iter()
            .map(|c| {
                let api = s.spawn(move || client.validate(&c.api_base, timeout));
                let intake = s.spawn(move || client.probe_intake(&c.intake_url, timeout));
                (api, intake)
            })
            .collect();
        let joined = |h: std::thread::ScopedJoinHandle<'_, Validation>| {
            h.join()
                .unwrap_or_else(|_| Validation::Unknown("probe panicked".into()))
        };
        handles
            .into_iter()
            .map(|(api, intake)| combine(joined(api), joined(intake)))
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

/// The kind of a probe round's result, to log each change once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    Found,
    NoneAccepts,
    Unknown,
}

#[derive(Debug)]
struct State {
    target: SiteState,
    /// Set at exit: waits end, the probe loop stops.
    stopped: bool,
}

/// Resolves and holds the instance's target.
#[derive(Debug)]
pub(crate) struct Resolver {
    state: Mutex<State>,
    changed: Condvar,
    candidates: Vec<Candidate>,
    probe_timeout: Duration,
    backoff: (Duration, Duration),
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Cached answer for the 403 explanation: `Some(None)` = valid nowhere.
    explained_403: Mutex<Option<Option<String>>>,
}

impl Resolver {
    /// Builds the resolver; a configured site or endpoint is ready at once.
    pub(crate) fn new(cfg: &Config) -> Resolver {
        let target = match &cfg.destination {
            Destination::Site(s) => SiteState::Ready {
                url: s.intake_url(),
                site: s.domain.to_string(),
            },
            Destination::Endpoint(url) => SiteState::Ready {
                url: url.clone(),
                site: crate::deliver::client::host_of(url).to_string(),
            },
            Destination::AutoDetect => SiteState::Pending,
        };
        Resolver {
            state: Mutex::new(State {
                target,
                stopped: false,
            }),
            changed: Condvar::new(),
            candidates: candidates(cfg),
            probe_timeout: cfg.timeout.min(PROBE_TIMEOUT),
            backoff: if cfg.probe_override.is_some() {
                TEST_BACKOFF
            } else {
                (BACKOFF_MIN, BACKOFF_MAX)
            },
            thread: Mutex::new(None),
            explained_403: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the site stands now.
    pub(crate) fn state(&self) -> SiteState {
        self.lock().target.clone()
    }

    /// The state once auto-detection has an answer: waits while it is [`SiteState::Pending`],
    /// for at most `bound`, and not after [`Resolver::stop`]. Returns `Pending` only when the
    /// bound passed (or the instance is exiting) with the site still unknown.
    pub(crate) fn wait_state(&self, bound: Duration) -> SiteState {
        let st = self.wait_while(self.lock(), bound, |st| st.target == SiteState::Pending);
        st.target.clone()
    }

    /// Waits on the state's condition variable while `cond` holds, for at most `bound`, and
    /// not after [`Resolver::stop`].
    fn wait_while<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        bound: Duration,
        cond: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + bound;
        while cond(&st) && !st.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st
    }

    /// Starts the probe loop unless the target is ready, the loop runs, or the instance exits.
    /// The loop probes until a site accepts the key, pausing with backoff between rounds.
    pub(crate) fn start(self: &Arc<Self>, client: Arc<Client>, events: Arc<Events>) {
        {
            let st = self.lock();
            if st.stopped || matches!(st.target, SiteState::Ready { .. }) {
                return;
            }
        }
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the thread slot's lock, which `join` takes after setting
        // `stopped`: a loop is either started before `join` looks (and joined) or not at all.
        if self.lock().stopped || slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        let me = Arc::clone(self);
        let ev = Arc::clone(&events);
        let spawned = std::thread::Builder::new()
            .name("dd-site-probe".into())
            .spawn(move || me.run(&client, &events));
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => ev.emit(Event::ProbeThreadFailed {
                error: &e.to_string(),
            }),
        }
    }

    /// The probe loop: one round, then (unless a site was found) a pause that doubles each
    /// time up to the maximum, until found or stopped.
    fn run(&self, client: &Client, events: &Events) {
        let (mut pause, max) = self.backoff;
        let mut last: Option<Round> = None;
        loop {
            if self.lock().stopped {
                return;
            }
            let verdict = probe(client, &self.candidates, self.probe_timeout);
            let (target, outcome) = self.judge(verdict, events, last, max);
            last = Some(outcome);
            let mut st = self.lock();
            st.target = target;
            self.changed.notify_all();
            if outcome == Round::Found {
                return;
            }
            drop(self.wait_while(st, pause, |_| true));
            pause = (pause * 2).min(max);
        }
    }

    /// The state a round's verdict implies; an event (one line) when the outcome changed.
    fn judge(
        &self,
        verdict: Probe,
        events: &Events,
        last: Option<Round>,
        max: Duration,
    ) -> (SiteState, Round) {
        let round = match &verdict {
            Probe::Found(_) => Round::Found,
            Probe::NoneAccepts => Round::NoneAccepts,
            Probe::Unknown(_) => Round::Unknown,
        };
        if last != Some(round) {
            let asked: Vec<&str> = self.candidates.iter().map(|c| c.name.as_str()).collect();
            events.emit(match &verdict {
                Probe::Found(c) => Event::SiteFound {
                    site: &c.name,
                    url: &c.intake_url,
                },
                Probe::NoneAccepts => Event::NoSiteAccepts {
                    asked: &asked,
                    backoff_max: max,
                },
                Probe::Unknown(why) => Event::SiteUnknown {
                    why,
                    backoff_max: max,
                },
            });
        }
        let state = match verdict {
            Probe::Found(c) => SiteState::Ready {
                url: c.intake_url,
                site: c.name,
            },
            Probe::NoneAccepts => SiteState::Failed,
            Probe::Unknown(_) => SiteState::Pending,
        };
        (state, round)
    }

    /// After a 403 from `site`: the name of another site where the key is valid (probed once,
    /// then cached), or `None` when it is valid nowhere or the probe had no answer.
    pub(crate) fn explain_403(&self, client: &Client, site: &str) -> Option<String> {
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

    /// Ends waits in [`Resolver::wait_state`] and stops the probe loop after its round.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Stops the probe loop and waits for it to end (a round is bounded by the probe timeout).
    pub(crate) fn join(&self) {
        self.stop();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_answer_accepting_the_key_is_enough() {
        use Validation::{Invalid, Unknown, Valid};
        let u = || Unknown("HTTP 429".into());
        assert_eq!(combine(u(), Valid), Valid);
        assert_eq!(combine(Valid, u()), Valid);
        assert_eq!(combine(Invalid, Valid), Valid);
        assert_eq!(combine(u(), Invalid), Invalid);
        assert_eq!(combine(Invalid, Invalid), Invalid);
        assert!(matches!(combine(u(), u()), Unknown(_)));
    }
}
