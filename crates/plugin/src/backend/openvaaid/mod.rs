//! The openvaaid backend: primitives as calls to the openvaai daemon on the NAS, over a
//! small pool of authenticated connections.

mod exec;
pub(crate) use exec::report_steps;
mod pool;

use std::time::{Duration, Instant};

use openvaai_client::{DataStore, Failure};
use openvaai_proto::Capabilities;

use super::Backend;
use crate::primitive::{Outcome, Primitive, Progress, Request};
use pool::Pool;

/// A session's datastore served by openvaaid.
pub struct Openvaaid {
    pub datastore: DataStore,
    pub timeout: Duration,
    pub capabilities: Capabilities,
    pool: Pool,
}

impl Openvaaid {
    /// Reads the access file, connects, authenticates the export and reads its capabilities.
    pub fn open(datastore: DataStore, timeout: Duration) -> Result<Openvaaid, Failure> {
        let deadline = Instant::now() + timeout;
        let opened = openvaai_client::open(&datastore, deadline, &crate::log::note)?;
        Ok(Openvaaid {
            pool: Pool::new(datastore.clone(), opened.trust, opened.conn),
            datastore,
            timeout,
            capabilities: opened.capabilities,
        })
    }

    /// The export's name for the daemon: the path the NAS exports.
    pub fn export(&self) -> &str {
        &self.datastore.remote_mount_point
    }

    /// A deadline one session timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }
}

impl Backend for Openvaaid {
    fn describe(&self) -> String {
        let c = &self.capabilities;
        format!(
            "export {} ({}, reflink {}), openvaaid {}",
            self.export(),
            c.fs_type,
            if c.reflink { "yes" } else { "no" },
            c.daemon_version
        )
    }

    fn supports(&self, primitive: Primitive) -> bool {
        let bit = match primitive {
            Primitive::Clone => openvaai_proto::PRIM_CLONE,
            Primitive::Reserve => openvaai_proto::PRIM_RESERVE,
            Primitive::Statx => openvaai_proto::PRIM_STATX,
        };
        self.capabilities.primitives & bit != 0
    }

    fn exec(&self, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome {
        exec::run(self, request, progress)
    }
}
