//! The per-connection protocol state machine.
//!
//! [`Engine::feed`] is a byte-level incremental parser: the 8-byte header is accumulated (it
//! may arrive one byte at a time), content is streamed, and padding is skipped by count on
//! every record. Nothing is buffered in proportion to a size a peer declared except the
//! BEGIN_REQUEST body (a fixed 8-byte array), a GET_VALUES body (at most 65535 bytes, in a
//! reused buffer) and PARAMS, which are decoded straight into the request's [`ParamStore`]
//! under the configured limits; the store grows with the bytes received, never ahead of them
//! to a declared length. STDIN and DATA bytes are handed to the [`Sink`] as slices of the
//! caller's input.
//!
//! Request state lives in a short vector of slots searched linearly (a connection rarely has
//! more than one request in flight); slots of ended requests are kept for reuse, so steady
//! traffic allocates nothing.

use super::nvpair::{encoded_len, parse_pairs, NvDecoder, NvError};
use super::params::ParamStore;
use super::record::{
    self, rtype, Header, ProtocolStatus, Role, HEADER_LEN, KEEP_CONN, MANAGEMENT_ID,
    MAX_CONTENT_LEN, VERSION_1,
};

/// Limits and switches the engine enforces on one connection.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Whether several requests may be in flight on the connection (FCGI_MPXS_CONNS).
    pub mpxs_conns: bool,
    /// Requests in flight on this connection at most (used when `mpxs_conns`).
    pub max_reqs_per_conn: u32,
    /// Sum of name and value bytes of one request's PARAMS at most.
    pub max_params_bytes: u32,
    /// Pairs in one request's PARAMS at most.
    pub max_params_count: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mpxs_conns: true,
            max_reqs_per_conn: 128,
            max_params_bytes: 1 << 20,
            max_params_count: 1000,
        }
    }
}

/// The sink's answer to a BEGIN_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Take the request.
    Admit,
    /// Refuse it: the engine answers END_REQUEST with this protocol status and forgets the id.
    Refuse(ProtocolStatus),
}

/// Why a connection must be closed. Every variant is a peer's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header carried a version other than 1.
    BadVersion(u8),
    /// BEGIN_REQUEST whose content is not 8 bytes long.
    BadBeginLength(u16),
    /// BEGIN_REQUEST for an id that is already active.
    DuplicateRequestId(u16),
    /// A stream record for an active request out of order (e.g. STDIN before PARAMS ended).
    UnexpectedRecord { rtype: u8, request_id: u16 },
    /// A name-value pair that is cut short or whose lengths are inconsistent.
    MalformedParams(u16),
    /// PARAMS beyond the byte limit.
    ParamsTooLarge(u16),
    /// PARAMS beyond the pair-count limit.
    TooManyParams(u16),
    /// A GET_VALUES body that is not a valid sequence of pairs.
    MalformedGetValues,
}

/// What the peer did, for the log line of the closed connection.
impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ProtocolError::BadVersion(v) => write!(f, "a record of version {v} (1 expected)"),
            ProtocolError::BadBeginLength(n) => {
                write!(f, "a BEGIN_REQUEST of {n} bytes (8 expected)")
            }
            ProtocolError::DuplicateRequestId(id) => {
                write!(
                    f,
                    "a second BEGIN_REQUEST for request {id}, which is in progress"
                )
            }
            ProtocolError::UnexpectedRecord { rtype, request_id } => {
                write!(
                    f,
                    "a record of type {rtype} out of order for request {request_id}"
                )
            }
            ProtocolError::MalformedParams(id) => write!(
                f,
                "malformed PARAMS for request {id} (a name-value pair cut short or with \
                 inconsistent lengths)"
            ),
            ProtocolError::ParamsTooLarge(id) => write!(
                f,
                "PARAMS of request {id} larger than the limit (FCGI_LIMIT_MAX_PARAMS_BYTES)"
            ),
            ProtocolError::TooManyParams(id) => write!(
                f,
                "PARAMS of request {id} with more pairs than the limit \
                 (FCGI_LIMIT_MAX_PARAMS_COUNT)"
            ),
            ProtocolError::MalformedGetValues => f.write_str("a malformed GET_VALUES record"),
        }
    }
}

/// Receives the events of one connection. Implemented by the runtime.
pub trait Sink {
    /// A BEGIN_REQUEST for a new id passed the engine's own checks (role, multiplexing,
    /// per-connection limit). The sink may still refuse it (process-wide limits).
    fn begin(&mut self, id: u16, role: Role, keep_conn: bool) -> Admission;
    /// PARAMS ended for `id`. The sink takes the pairs (e.g. with `std::mem::swap`) and
    /// should leave an empty store behind for reuse.
    fn params(&mut self, id: u16, params: &mut ParamStore);
    /// STDIN bytes for `id`. Returns how many were taken; fewer than offered pauses the
    /// engine (back-pressure): `feed` returns early and the caller offers the rest later.
    fn stdin(&mut self, id: u16, data: &[u8]) -> usize;
    /// The empty STDIN record for `id`.
    fn stdin_end(&mut self, id: u16);
    /// DATA bytes (Filter role), after STDIN ended. Same contract as [`Sink::stdin`].
    fn data(&mut self, id: u16, data: &[u8]) -> usize;
    /// The empty DATA record for `id`.
    fn data_end(&mut self, id: u16);
    /// ABORT_REQUEST for the active `id`. The sink arranges the END_REQUEST and then calls
    /// [`Engine::end_request`].
    fn abort(&mut self, id: u16);
    /// The value of a management variable for GET_VALUES, appended to `out`. Returns false for
    /// names the application does not know (they are omitted from the answer).
    fn mgmt_value(&mut self, name: &[u8], out: &mut Vec<u8>) -> bool;
}

/// Slots of ended requests kept for reuse (with their [`ParamStore`] allocations).
pub const SPARE_SLOTS: usize = 4;

/// Ceilings on the configured PARAMS limits. [`ParamStore`] addresses its buffer with `u32`
/// offsets; with these, payload plus two separator bytes per pair stays well below 4 GiB
/// whatever the configuration says.
const STORE_MAX_BYTES: usize = 1 << 30;
const STORE_MAX_COUNT: usize = 1 << 28;

/// Length of the BEGIN_REQUEST body.
const BEGIN_BODY_LEN: usize = 8;

/// Which input stream of a request comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// PARAMS until its empty record.
    Params,
    /// STDIN until its empty record.
    Stdin,
    /// DATA until its empty record.
    Data,
    /// Every input stream ended; only the application's END_REQUEST is missing.
    Done,
}

/// The state of one active request.
#[derive(Debug)]
struct Slot {
    id: u16,
    phase: Phase,
    store: ParamStore,
    decoder: NvDecoder,
    /// Limits in force when the request began.
    max_bytes: usize,
    max_count: usize,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            id: 0,
            phase: Phase::Params,
            store: ParamStore::new(),
            decoder: NvDecoder::new(),
            max_bytes: 0,
            max_count: 0,
        }
    }
}

/// Where the parser is within the current record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header,
    Content,
    Padding,
}

/// What becomes of the content of the current record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    /// Discarded (inactive ids, unknown or application-bound types, ended requests).
    Skip,
    /// Collected into the fixed BEGIN_REQUEST body.
    Begin,
    /// Collected into the GET_VALUES buffer.
    GetValues,
    /// Decoded into the request's parameters.
    Params,
    /// Handed to [`Sink::stdin`].
    Stdin,
    /// Handed to [`Sink::data`].
    Data,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    stage: Stage,
    header: [u8; HEADER_LEN],
    header_have: usize,
    /// Request id of the current record.
    id: u16,
    content: Content,
    content_left: usize,
    padding_left: usize,
    begin_body: [u8; BEGIN_BODY_LEN],
    /// Body of the GET_VALUES record being received.
    get_values: Vec<u8>,
    /// Content of the GET_VALUES_RESULT being built.
    answer: Vec<u8>,
    /// One management value, as the sink writes it.
    value: Vec<u8>,
    active: Vec<Slot>,
    spare: Vec<Slot>,
    /// The error that ended the connection, returned again by later calls to `feed`.
    failed: Option<ProtocolError>,
}

impl Engine {
    /// An engine at the start of a connection.
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            cfg,
            stage: Stage::Header,
            header: [0; HEADER_LEN],
            header_have: 0,
            id: 0,
            content: Content::Skip,
            content_left: 0,
            padding_left: 0,
            begin_body: [0; BEGIN_BODY_LEN],
            get_values: Vec::new(),
            answer: Vec::new(),
            value: Vec::new(),
            active: Vec::new(),
            spare: Vec::new(),
            failed: None,
        }
    }

    /// Feeds received bytes. Returns how many were consumed: all of them unless the sink
    /// refused STDIN/DATA bytes, in which case the caller keeps the rest and feeds it again
    /// later. Answers the engine owes the peer are appended to `out`.
    ///
    /// An error means the connection must be closed; every later call returns it again.
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<usize, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.run(input, sink, out)
            .inspect_err(|e| self.failed = Some(e.clone()))
    }

    /// The application sent END_REQUEST for `id`: the id becomes inactive.
    ///
    /// Does nothing for an inactive id. If a record for `id` is partly received, the rest of
    /// its content is skipped.
    pub fn end_request(&mut self, id: u16) {
        if let Some(i) = self.find(id) {
            self.release(i);
        }
    }

    /// Requests active on this connection.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Whether `id` is active: begun and admitted, and neither ended nor aborted.
    pub fn is_active(&self, id: u16) -> bool {
        self.find(id).is_some()
    }

    /// True when no record is partly received: the next input byte begins a record.
    pub fn at_record_boundary(&self) -> bool {
        self.stage == Stage::Header && self.header_have == 0
    }

    /// True when no request is active and no record is partly received.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty() && self.stage == Stage::Header && self.header_have == 0
    }

    /// Heap bytes the engine holds: its management buffers and the parameter stores of active
    /// and spare request slots. For memory bounds in tests and fuzz targets.
    pub fn heap_bytes(&self) -> usize {
        let slots = self.active.iter().chain(&self.spare);
        self.get_values.capacity()
            + self.answer.capacity()
            + self.value.capacity()
            + (self.active.capacity() + self.spare.capacity()) * std::mem::size_of::<Slot>()
            + slots.map(|s| s.store.heap_bytes()).sum::<usize>()
    }

    /// Slots of ended requests kept for reuse (at most a few).
    pub fn spare_slots(&self) -> usize {
        self.spare.len()
    }

    /// Changes the limits for requests that begin from now on.
    pub fn set_config(&mut self, cfg: EngineConfig) {
        self.cfg = cfg;
    }

    /// The parameters received so far for an active request still in its PARAMS phase.
    #[cfg(test)]
    fn params_of(&self, id: u16) -> Option<&ParamStore> {
        self.find(id).map(|i| &self.active[i].store)
    }

    fn find(&self, id: u16) -> Option<usize> {
        self.active.iter().position(|s| s.id == id)
    }

    /// Makes the slot at `i` inactive and keeps it for reuse.
    fn release(&mut self, i: usize) {
        let mut slot = self.active.swap_remove(i);
        let streaming = matches!(
            self.content,
            Content::Params | Content::Stdin | Content::Data
        );
        if streaming && slot.id == self.id && self.stage == Stage::Content {
            // Nothing more of this record may reach the sink or the store.
            self.content = Content::Skip;
        }
        if self.spare.len() < SPARE_SLOTS {
            slot.store.clear();
            slot.decoder.reset();
            self.spare.push(slot);
        }
    }

    fn run(
        &mut self,
        input: &[u8],
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.stage {
                Stage::Header => {
                    let n = (HEADER_LEN - self.header_have).min(rest.len());
                    self.header[self.header_have..self.header_have + n].copy_from_slice(&rest[..n]);
                    self.header_have += n;
                    pos += n;
                    if self.header_have == HEADER_LEN {
                        self.header_have = 0;
                        self.start_record(sink, out)?;
                    }
                }
                Stage::Content => {
                    let n = self.content_left.min(rest.len());
                    let taken = self.take_content(&rest[..n], sink)?;
                    pos += taken;
                    self.content_left -= taken;
                    if self.content_left == 0 {
                        self.end_content(sink, out)?;
                    } else if taken < n {
                        // Back-pressure: the sink wants the rest later.
                        break;
                    }
                }
                Stage::Padding => {
                    let n = self.padding_left.min(rest.len());
                    pos += n;
                    self.padding_left -= n;
                    if self.padding_left == 0 {
                        self.stage = Stage::Header;
                    }
                }
            }
        }
        Ok(pos)
    }

    /// A complete header is in `self.header`: check it and decide what its content is for.
    fn start_record(
        &mut self,
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        let h = Header::parse(&self.header);
        if h.version != VERSION_1 {
            return Err(ProtocolError::BadVersion(h.version));
        }
        self.id = h.request_id;
        self.content_left = h.content_len as usize;
        self.padding_left = h.padding_len as usize;
        self.content = self.dispatch(&h, sink, out)?;
        self.stage = Stage::Content;
        if self.content_left == 0 {
            self.end_content(sink, out)?;
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        h: &Header,
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<Content, ProtocolError> {
        let id = h.request_id;
        if id == MANAGEMENT_ID {
            if h.rtype == rtype::GET_VALUES {
                self.get_values.clear();
                return Ok(Content::GetValues);
            }
            record::push_unknown_type(out, h.rtype);
            return Ok(Content::Skip);
        }
        match h.rtype {
            rtype::BEGIN_REQUEST if h.content_len as usize != BEGIN_BODY_LEN => {
                Err(ProtocolError::BadBeginLength(h.content_len))
            }
            rtype::BEGIN_REQUEST => Ok(Content::Begin),
            rtype::ABORT_REQUEST => {
                if let Some(i) = self.find(id) {
                    self.release(i);
                    sink.abort(id);
                }
                Ok(Content::Skip)
            }
            rtype::PARAMS | rtype::STDIN | rtype::DATA => {
                self.stream_record(h.rtype, id, h.content_len == 0, sink)
            }
            // Types the application sends, GET_VALUES with a request id, unknown types.
            _ => Ok(Content::Skip),
        }
    }

    /// A PARAMS, STDIN or DATA header for `id`; `empty` records end their stream.
    fn stream_record(
        &mut self,
        rt: u8,
        id: u16,
        empty: bool,
        sink: &mut impl Sink,
    ) -> Result<Content, ProtocolError> {
        let Some(i) = self.find(id) else {
            return Ok(Content::Skip);
        };
        let slot = &mut self.active[i];
        match (rt, slot.phase) {
            (rtype::PARAMS, Phase::Params) if empty => {
                if !slot.decoder.at_boundary() {
                    return Err(ProtocolError::MalformedParams(id));
                }
                slot.phase = Phase::Stdin;
                sink.params(id, &mut slot.store);
                Ok(Content::Skip)
            }
            (rtype::PARAMS, Phase::Params) => Ok(Content::Params),
            (rtype::STDIN, Phase::Stdin) if empty => {
                slot.phase = Phase::Data;
                sink.stdin_end(id);
                Ok(Content::Skip)
            }
            (rtype::STDIN, Phase::Stdin) => Ok(Content::Stdin),
            (rtype::DATA, Phase::Data) if empty => {
                slot.phase = Phase::Done;
                sink.data_end(id);
                Ok(Content::Skip)
            }
            (rtype::DATA, Phase::Data) => Ok(Content::Data),
            // A repeated end of a stream that already ended: harmless, ignored.
            (rtype::STDIN, Phase::Data | Phase::Done) | (rtype::DATA, Phase::Done) if empty => {
                Ok(Content::Skip)
            }
            _ => Err(ProtocolError::UnexpectedRecord {
                rtype: rt,
                request_id: id,
            }),
        }
    }

    /// Handles `chunk` (at most the rest of the current content); returns the bytes taken.
    fn take_content(&mut self, chunk: &[u8], sink: &mut impl Sink) -> Result<usize, ProtocolError> {
        let n = chunk.len();
        match self.content {
            Content::Skip => {}
            Content::Begin => {
                let have = BEGIN_BODY_LEN - self.content_left;
                self.begin_body[have..have + n].copy_from_slice(chunk);
            }
            Content::GetValues => self.get_values.extend_from_slice(chunk),
            Content::Params => {
                let id = self.id;
                let Some(i) = self.find(id) else {
                    self.content = Content::Skip;
                    return Ok(n);
                };
                let slot = &mut self.active[i];
                slot.decoder
                    .feed(chunk, &mut slot.store, slot.max_bytes, slot.max_count)
                    .map_err(|e| match e {
                        NvError::Malformed => ProtocolError::MalformedParams(id),
                        NvError::TooLarge => ProtocolError::ParamsTooLarge(id),
                        NvError::TooMany => ProtocolError::TooManyParams(id),
                    })?;
            }
            Content::Stdin => return Ok(sink.stdin(self.id, chunk).min(n)),
            Content::Data => return Ok(sink.data(self.id, chunk).min(n)),
        }
        Ok(n)
    }

    /// The current record's content is complete.
    fn end_content(
        &mut self,
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        match self.content {
            Content::Begin => self.begin(sink, out)?,
            Content::GetValues => self.answer_get_values(sink, out)?,
            _ => {}
        }
        self.content = Content::Skip;
        self.stage = if self.padding_left > 0 {
            Stage::Padding
        } else {
            Stage::Header
        };
        Ok(())
    }

    /// A complete BEGIN_REQUEST body for `self.id`.
    fn begin(&mut self, sink: &mut impl Sink, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let id = self.id;
        if self.find(id).is_some() {
            return Err(ProtocolError::DuplicateRequestId(id));
        }
        let b = self.begin_body;
        let keep_conn = b[2] & KEEP_CONN != 0;
        let refusal = match Role::from_u16(u16::from_be_bytes([b[0], b[1]])) {
            None => Some(ProtocolStatus::UnknownRole),
            Some(_) if !self.cfg.mpxs_conns && !self.active.is_empty() => {
                Some(ProtocolStatus::CantMpxConn)
            }
            Some(_) if self.active.len() >= self.cfg.max_reqs_per_conn as usize => {
                Some(ProtocolStatus::Overloaded)
            }
            Some(role) => match sink.begin(id, role, keep_conn) {
                Admission::Admit => {
                    self.admit(id, role);
                    None
                }
                Admission::Refuse(status) => Some(status),
            },
        };
        if let Some(status) = refusal {
            record::push_end_request(out, id, 0, status);
        }
        Ok(())
    }

    fn admit(&mut self, id: u16, role: Role) {
        let mut slot = self.spare.pop().unwrap_or_else(Slot::new);
        slot.id = id;
        slot.phase = Phase::Params;
        slot.store.clear();
        slot.store.push(b"FCGI_ROLE", role.name().as_bytes());
        slot.decoder.reset();
        slot.max_bytes = (self.cfg.max_params_bytes as usize).min(STORE_MAX_BYTES);
        slot.max_count = (self.cfg.max_params_count as usize).min(STORE_MAX_COUNT);
        self.active.push(slot);
    }

    /// Answers the complete GET_VALUES body with one GET_VALUES_RESULT (§4.1): the known
    /// names with their values, in the order asked, as long as they fit one record.
    fn answer_get_values(
        &mut self,
        sink: &mut impl Sink,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        self.answer.clear();
        for pair in parse_pairs(&self.get_values) {
            let (name, _) = pair.map_err(|_| ProtocolError::MalformedGetValues)?;
            self.value.clear();
            if sink.mgmt_value(name, &mut self.value)
                && self.answer.len() + encoded_len(name, &self.value) <= MAX_CONTENT_LEN
            {
                record::push_nv_pair(&mut self.answer, name, &self.value);
            }
        }
        record::push_record(out, rtype::GET_VALUES_RESULT, MANAGEMENT_ID, &self.answer);
        Ok(())
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
