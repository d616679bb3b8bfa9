//! Integration tests: each drives the real server over HTTP and WebSocket.

mod common;

mod activities;
mod api;
mod attendance;
mod bad_input;
mod chat;
mod cli;
mod grading;
mod hands;
mod http_errors;
mod lrs;
mod media;
mod media_peer;
mod permissions;
mod qa;
mod record_files;
mod recording;
mod restart;
mod resume;
mod rooms;
mod stage;
mod storage_failure;
mod web;
