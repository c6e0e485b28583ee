//! Segment descriptors a guest may put in its GDT (and LDT): the rule behind the `SegDesc`
//! page type, as Xen's `check_descriptor` has it for 64-bit PV guests. A frame becomes a
//! descriptor page only if every one of its 512 descriptors passes (fixed up where Xen fixes
//! up); while it is one, no writable mapping of it exists (the type rules), so the guest
//! changes a descriptor only through `update_descriptor`, which checks it the same way.
//!
//! - A descriptor that is not present always faults when loaded: anything goes.
//! - Code and data segments are fine (base and limit mean nothing in 64-bit mode, FS and GS
//!   bases aside, which are MSRs), but their DPL is raised to 3: the guest kernel runs in
//!   ring 3 and must not name a segment only ring 0 may use.
//! - System descriptors: type 0 is harmless (the upper half of a 16-byte descriptor); every
//!   other one (TSS, LDT, call, interrupt and trap gates) is refused. Xen accepts call gates
//!   to guest code for 32-bit compatibility code; xen-core runs none, and a gate is a way into
//!   another privilege level, so it refuses them.

/// Present.
const P: u64 = 1 << 47;
/// Code or data (as opposed to a system descriptor).
const S: u64 = 1 << 44;
/// The descriptor privilege level (bits 45-46).
const DPL: u64 = 3 << 45;
/// The type field (bits 40-43).
const TYPE: u64 = 0xF << 40;

/// Checks descriptor `d` for a guest's descriptor table: the descriptor to store (the DPL of
/// a code or data segment raised to 3), or `None` if it may not be there.
pub fn check_descriptor(d: u64) -> Option<u64> {
    if d & P == 0 {
        return Some(d);
    }
    if d & S != 0 {
        return Some(d | DPL);
    }
    if d & TYPE == 0 {
        return Some(d);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flat 64-bit code, DPL `dpl`.
    fn code(dpl: u64) -> u64 {
        0x00AF_9A00_0000_FFFF | (dpl << 45)
    }

    #[test]
    fn code_and_data_pass_with_their_privilege_raised_to_the_guests() {
        assert_eq!(check_descriptor(code(3)), Some(code(3)));
        assert_eq!(check_descriptor(code(0)), Some(code(3)), "ring-0 code becomes ring 3");
        let data = 0x00CF_9200_0000_FFFF;
        assert_eq!(check_descriptor(data), Some(data | DPL));
        // Linux's CPUNODE entry: a data segment whose limit carries the CPU number.
        let cpunode = 0x0040_F500_0000_0000;
        assert_eq!(check_descriptor(cpunode), Some(cpunode));
    }

    #[test]
    fn system_descriptors_are_refused_unless_absent_or_empty() {
        let tss = 0x0000_8900_0000_0067;
        let ldt = 0x0000_8200_0000_0FFF;
        let call_gate = 0x0000_EC00_E033_1000;
        let int_gate = 0x0000_EE00_E033_1000;
        for d in [tss, ldt, call_gate, int_gate] {
            assert_eq!(check_descriptor(d), None, "{d:#x}");
            assert_eq!(check_descriptor(d & !P), Some(d & !P), "absent: harmless");
        }
        assert_eq!(check_descriptor(0), Some(0));
        assert_eq!(check_descriptor(0xFFFF_FFFF), Some(0xFFFF_FFFF), "a 16-byte one's upper half");
    }
}
