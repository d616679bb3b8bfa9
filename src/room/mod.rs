//! Classroom logic: roster, chat, hands, Q&A, stage and attendance.
//!
//! Each live session has one room actor ([`actor`]) that owns its state
//! ([`state::ClassState`]), applies requests with pure logic ([`logic`]),
//! stores the resulting events and only then sends them. This module knows
//! nothing about sockets: connections appear as [`conn::ConnHandle`]s.

pub mod activities;
pub mod actor;
pub mod attendance;
pub mod budget;
pub mod conn;
pub mod logic;
mod registry;
pub mod state;

pub use logic::{Actor, Rejection};
pub use registry::{RoomError, RoomLink, Rooms, SessionPatch};
