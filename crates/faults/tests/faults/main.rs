//! Faults, hostile input and load: nothing lost, nothing let in.
//!
//! The real `openvaaid` and the real `libopenvaai.so` (loaded by the disklib stand-in) on
//! loop-mounted XFS images, with the daemon killed, frozen and cut off the network, the disk
//! filled, clients that vanish, hostile bytes and connections, an attacker without the secret
//! or from the wrong address, and a load of concurrent clients. Every test checks the
//! filesystem afterwards: no destination, no temporary, the space back, the source intact.
//! The findings and numbers are in `docs/reliability.md`.

mod abandon;
mod access;
mod attack;
mod burst;
mod confine;
mod corpus;
mod crash;
mod deadline;
mod diskfull;
mod failover;
mod hostile;
mod load;
mod mounts;
mod names;
mod netcut;
mod netns;
mod private;
mod raw;
mod startup;
mod trust;
mod util;
