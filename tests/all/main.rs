//! End-to-end tests: the real `connector-host` binary runs the real connector
//! component against the fake Confluence over loopback HTTP. One binary, one module
//! per topic.

mod service_support;
mod support;

mod attachments;
mod auto_resync;
mod cli;
mod comments;
mod connect;
mod contract;
mod dashboard;
mod faults;
mod hostile_input;
mod includes;
mod ingest;
mod labels;
mod many_hosts;
mod mcp;
mod operator_key;
mod postgres;
mod resume;
mod retrieve;
mod sandbox;
mod semantic;
mod service;
mod sources;
mod sync;
