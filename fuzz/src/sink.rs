//! A [`Sink`] that models the requests of one connection and panics on any event the
//! protocol does not allow at that point.

use std::collections::{BTreeMap, HashMap};

use fcgi_runtime_protocol::record::mgmt;
use fcgi_runtime_protocol::{Admission, EngineConfig, ParamStore, ProtocolStatus, Role, Sink};

use crate::rng::Rng;

/// Pairs as owned bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the engine told the sink, with STDIN/DATA bytes merged per run (so the log does not
/// depend on how the input was split or how much back-pressure there was).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Begin(u16, Role, bool, Admission),
    Params(u16, Pairs),
    Stdin(u16, Vec<u8>),
    StdinEnd(u16),
    Data(u16, Vec<u8>),
    DataEnd(u16),
    Abort(u16),
    Mgmt(Vec<u8>),
}

/// Where an admitted request is, as far as the sink knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Params,
    Stdin,
    Data,
    Done,
}

/// An admitted, still active request.
#[derive(Clone, Debug)]
pub struct Req {
    pub role: Role,
    pub phase: Phase,
    max_bytes: usize,
    max_count: usize,
}

/// How the sink behaves; see [`crate::driver::Knobs`].
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// 0 admits every request, 1 refuses one in four, 2 half, 3 all.
    pub refuse_mode: u8,
    /// Take only part of the STDIN/DATA bytes offered, at random.
    pub backpressure: bool,
    /// Admission answers to replay instead of drawing them (the one-shot differential run).
    pub replay: Option<Vec<Admission>>,
}

/// The value the sink gives for a management variable, or `None` when it does not know it.
pub fn mgmt_answer(name: &[u8], cfg: &EngineConfig) -> Option<Vec<u8>> {
    if name == mgmt::MAX_CONNS {
        Some(b"16384".to_vec())
    } else if name == mgmt::MAX_REQS {
        Some(b"1024".to_vec())
    } else if name == mgmt::MPXS_CONNS {
        Some(if cfg.mpxs_conns { b"1" } else { b"0" }.to_vec())
    } else if name == b"FUZZ_BIG" {
        // Large enough that a few repeats hit the one-record bound of the answer.
        Some(vec![b'v'; 3000])
    } else {
        None
    }
}

pub struct CheckSink {
    /// Configuration in force (admission checks use the current one).
    pub cfg: EngineConfig,
    rng: Rng,
    behaviour: Behaviour,
    replay_at: usize,
    /// Every admission answer given, in order.
    pub decisions: Vec<Admission>,
    /// Admitted requests that are still active.
    pub active: BTreeMap<u16, Req>,
    /// Admissions per id.
    pub admitted: HashMap<u16, usize>,
    pub log: Vec<Ev>,
    /// Set when STDIN or DATA bytes were refused during the current `feed`.
    pub paused: bool,
    /// Take every byte offered (set by the driver right after a pause, so input advances).
    pub no_pause: bool,
}

impl CheckSink {
    pub fn new(cfg: EngineConfig, seed: u64, behaviour: Behaviour) -> CheckSink {
        CheckSink {
            cfg,
            rng: Rng::new(seed),
            behaviour,
            replay_at: 0,
            decisions: Vec::new(),
            active: BTreeMap::new(),
            admitted: HashMap::new(),
            log: Vec::new(),
            paused: false,
            no_pause: false,
        }
    }

    /// The application ended (or forgot) `id`.
    pub fn ended(&mut self, id: u16) {
        self.active.remove(&id);
    }

    fn req(&mut self, id: u16, what: &str) -> &mut Req {
        match self.active.get_mut(&id) {
            Some(r) => r,
            None => panic!("{what} for id {id}, which is not active"),
        }
    }

    fn take(&mut self, n: usize) -> usize {
        if self.behaviour.backpressure && !self.no_pause && self.rng.chance(1, 3) {
            let k = self.rng.below(n);
            self.paused = true;
            k
        } else {
            n
        }
    }

    fn push_bytes(&mut self, id: u16, data: &[u8], stdin: bool) {
        match self.log.last_mut() {
            Some(Ev::Stdin(i, v)) if stdin && *i == id => v.extend_from_slice(data),
            Some(Ev::Data(i, v)) if !stdin && *i == id => v.extend_from_slice(data),
            _ if stdin => self.log.push(Ev::Stdin(id, data.to_vec())),
            _ => self.log.push(Ev::Data(id, data.to_vec())),
        }
    }

    fn decide(&mut self) -> Admission {
        if let Some(r) = &self.behaviour.replay {
            let a = *r.get(self.replay_at).expect("replay ran out of admissions");
            self.replay_at += 1;
            return a;
        }
        let refuse = match self.behaviour.refuse_mode {
            0 => false,
            1 => self.rng.chance(1, 4),
            2 => self.rng.chance(1, 2),
            _ => true,
        };
        if !refuse {
            Admission::Admit
        } else if self.rng.chance(1, 2) {
            Admission::Refuse(ProtocolStatus::Overloaded)
        } else {
            Admission::Refuse(ProtocolStatus::CantMpxConn)
        }
    }
}

impl Sink for CheckSink {
    fn begin(&mut self, id: u16, role: Role, keep_conn: bool) -> Admission {
        assert_ne!(id, 0, "begin for the management id");
        assert!(!self.active.contains_key(&id), "begin for active id {id}");
        if !self.cfg.mpxs_conns {
            assert!(
                self.active.is_empty(),
                "second request without multiplexing"
            );
        }
        assert!(
            self.active.len() < self.cfg.max_reqs_per_conn as usize,
            "begin past max_reqs_per_conn"
        );
        let a = self.decide();
        self.decisions.push(a);
        if a == Admission::Admit {
            self.active.insert(
                id,
                Req {
                    role,
                    phase: Phase::Params,
                    max_bytes: self.cfg.max_params_bytes as usize,
                    max_count: self.cfg.max_params_count as usize,
                },
            );
            *self.admitted.entry(id).or_default() += 1;
        }
        self.log.push(Ev::Begin(id, role, keep_conn, a));
        a
    }

    fn params(&mut self, id: u16, params: &mut ParamStore) {
        let r = self.req(id, "params").clone();
        assert_eq!(r.phase, Phase::Params, "params twice for id {id}");
        assert!(params.last_complete(), "params end inside a pair");
        let pairs: Pairs = params
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        let (first, rest) = pairs.split_first().expect("FCGI_ROLE missing");
        assert_eq!(first.0, b"FCGI_ROLE");
        assert_eq!(first.1, r.role.name().as_bytes());
        assert!(rest.len() <= r.max_count, "more pairs than the limit");
        let bytes: usize = rest.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(bytes <= r.max_bytes, "params bytes {bytes} over the limit");
        assert_eq!(
            params.payload_bytes(),
            bytes + first.0.len() + first.1.len()
        );
        // Like the runtime: take the pairs, leave an empty store (sometimes keep them).
        if self.rng.chance(1, 2) {
            *params = ParamStore::new();
        }
        self.req(id, "params").phase = Phase::Stdin;
        self.log.push(Ev::Params(id, pairs));
    }

    fn stdin(&mut self, id: u16, data: &[u8]) -> usize {
        assert_eq!(
            self.req(id, "stdin").phase,
            Phase::Stdin,
            "stdin out of phase"
        );
        assert!(!data.is_empty(), "empty stdin chunk");
        let k = self.take(data.len());
        self.push_bytes(id, &data[..k], true);
        k
    }

    fn stdin_end(&mut self, id: u16) {
        let r = self.req(id, "stdin_end");
        assert_eq!(r.phase, Phase::Stdin, "stdin_end out of phase");
        r.phase = Phase::Data;
        self.log.push(Ev::StdinEnd(id));
    }

    fn data(&mut self, id: u16, data: &[u8]) -> usize {
        assert_eq!(self.req(id, "data").phase, Phase::Data, "data out of phase");
        assert!(!data.is_empty(), "empty data chunk");
        let k = self.take(data.len());
        self.push_bytes(id, &data[..k], false);
        k
    }

    fn data_end(&mut self, id: u16) {
        let r = self.req(id, "data_end");
        assert_eq!(r.phase, Phase::Data, "data_end out of phase");
        r.phase = Phase::Done;
        self.log.push(Ev::DataEnd(id));
    }

    fn abort(&mut self, id: u16) {
        self.req(id, "abort");
        self.active.remove(&id);
        self.log.push(Ev::Abort(id));
    }

    fn mgmt_value(&mut self, name: &[u8], out: &mut Vec<u8>) -> bool {
        self.log.push(Ev::Mgmt(name.to_vec()));
        match mgmt_answer(name, &self.cfg) {
            Some(v) => {
                out.extend_from_slice(&v);
                true
            }
            None => false,
        }
    }
}
