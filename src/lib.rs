//! sigil: a self-hostable edge server for Twilio-style static assets, with the Twilio
//! Serverless v1 API as its control plane.
//!
//! # Layout
//!
//! - [`body`]: the response body of every handler (one chunk, or a proxied stream).
//! - [`config`]: the command line and the validated [`config::Config`].
//! - [`sid`]: Twilio SIDs (prefix + 32 hex digits) and random identifiers.
//! - [`clock`]: timestamps as Twilio writes them.
//! - [`accounts`]: Accounts, auth tokens (with rotation) and API keys; Basic-auth checks.
//! - [`asset_path`]: the rules for a version's `Path`.
//! - [`manifest`]: what a Build holds (path → visibility, content address, size, type), and
//!   the narrow views of stored Builds and Environments the edge reads.
//! - [`store`]: content-addressed blobs on disk (and in an S3 bucket), and the metadata trait
//!   — versioned records, conditional batches, leases — with its embedded SQLite and shared
//!   PostgreSQL implementations; `sigil copy-store`.
//! - [`control`]: the Serverless v1 API, one file per resource, plus pagination, errors,
//!   forms, authentication (Basic, or a Console session with its CSRF token), and the
//!   periodic upkeep (retention, collection).
//! - [`console`]: the Console's static files (HTML, CSS, JavaScript modules), embedded and
//!   served at `/console/` with a strict Content-Security-Policy; a client of the v1 API.
//! - [`edge`]: serving Sites — routes, access, HTTP semantics, the blob and disk cache — and,
//!   for a fleet, the change-feed follower (prefetch, then flip), the route snapshot and the
//!   API proxy. It depends on the shared core ([`manifest`], [`store`], [`logsink`],
//!   [`wire`], [`signature`]), never on [`control`].
//! - [`functions`]: running deployed Functions — the request as `event`, each Build's
//!   directory and npm dependency set, and supervised, pooled Node workers running sigil's
//!   `runner.js` (Twilio's handler contract) with time, memory and concurrency limits. The
//!   edge calls it after access is decided.
//! - [`logsink`]: the batched request-log writer the edge records through.
//! - [`wire`]: what the control plane and the edge both put on the wire (Twilio's JSON
//!   errors, form decoding, the change-feed position header), so neither depends on the
//!   other.
//! - [`server`]: listeners, timeouts and graceful shutdown; `server/roles.rs` assembles each
//!   role (`all`, `control`, `edge`).

pub mod accounts;
pub mod asset_path;
pub mod body;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod manifest;
pub mod server;
pub mod sid;
pub mod store;

pub use body::Body;
pub mod deploy;
pub mod edge;
pub mod functions;
pub mod logline;
pub mod logsink;
pub mod precompress;
pub mod signature;
pub mod wire;
