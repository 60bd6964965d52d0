//! libopenvaai.so, the NAS plugin ESXi loads.
#![deny(unsafe_code)]
