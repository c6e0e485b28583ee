//! dom0's drivers for the machine's devices (the hypervisor keeps only the interrupt
//! controllers and the timer; every other device is dom0's). Today `serial`, the line dom0
//! reads its input from; PCI and virtio (the disk and network devices the block and network
//! back ends will serve from) go here next.

pub mod serial;
