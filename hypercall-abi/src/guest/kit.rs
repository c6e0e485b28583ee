//! The macros that write a PV kernel's few pieces of assembly, so a kernel needs none of its
//! own: the hypercall page ([`hypercall_page!`](crate::hypercall_page)), the entry point
//! ([`pv_start!`](crate::pv_start)) and an event upcall stub
//! ([`event_upcall!`](crate::event_upcall)). With [`xen_elf_notes!`](crate::xen_elf_notes) for
//! the notes, that is all of it (the porting guide in the crate docs walks through a kernel
//! built this way).
//!
//! They assume the `x86_64-unknown-none` target: no red zone (the hypervisor writes bounce
//! frames just below the interrupted `rsp`) and no SSE in generated code (the upcall stub
//! saves only the general registers).

/// Defines the `hypercall_page` symbol the hypercall wrappers call into: 4096 bytes,
/// page-aligned, in the executable section `.text.hypercall_page`, filled with `int3` until the
/// hypervisor writes its stubs there. Name it in the `HYPERCALL_PAGE` note
/// (`hypercall_page: "hypercall_page"` in [`xen_elf_notes!`](crate::xen_elf_notes)).
#[macro_export]
macro_rules! hypercall_page {
    () => {
        ::core::arch::global_asm!(
            ".pushsection .text.hypercall_page, \"ax\"",
            ".balign 4096",
            ".globl hypercall_page",
            "hypercall_page:",
            ".fill 4096, 1, 0xcc",
            ".popsection",
        );
    };
}

/// Defines the kernel's entry point `_start` (name it in the `ENTRY` note and as the linker's
/// `ENTRY`): it switches to a stack of its own in `.bss` (64 KiB unless given,
/// `pv_start!(main, stack = 131072)`), and calls `main` with the [`Start`](crate::guest::Start)
/// token for the start_info page the builder passed in `rsi`. `main` is a
/// `fn(hypercall_abi::guest::Start) -> !`.
#[macro_export]
macro_rules! pv_start {
    ($main:path) => {
        $crate::pv_start!($main, stack = 65536);
    };
    ($main:path, stack = $size:expr) => {
        const _: () = {
            static BOOT_STACK: $crate::guest::BootStack<{ $size }> =
                $crate::guest::BootStack::new();

            extern "C" fn rust_entry(rsi: u64) -> ! {
                // SAFETY: called only by `_start` below, with the rsi the builder set.
                let start = unsafe { $crate::guest::Start::from_entry(rsi) };
                $main(start)
            }

            /// The entry point the ELF header and the `ENTRY` note name.
            #[unsafe(no_mangle)]
            #[unsafe(naked)]
            extern "C" fn _start() -> ! {
                ::core::arch::naked_asm!(
                    "cld",
                    "lea rsp, [rip + {stack} + {size}]",
                    "xor ebp, ebp",
                    "mov rdi, rsi",
                    "call {entry}",
                    "ud2",
                    stack = sym BOOT_STACK,
                    size = const $size,
                    entry = sym rust_entry,
                )
            }
        };
    };
}

/// Defines `fn $entry() -> CallbackEntry`: an event upcall stub that runs `handler` (a plain
/// `fn()`) and returns to the interrupted code. Register it with
/// [`register_event_callback`](crate::guest::register_event_callback):
///
/// ```ignore
/// fn on_event() { /* scan shared_info, handle ports */ }
/// hypercall_abi::event_upcall!(fn upcall_entry => on_event);
/// hypercall_abi::guest::register_event_callback(upcall_entry())?;
/// ```
///
/// The stub follows the bounce-frame convention: it pops the `rcx` and `r11` the hypervisor
/// pushed, saves the other caller-saved registers, aligns the stack, calls the handler, restores
/// them, pushes the `iret` flags word (0) on top of the frame's `rip, cs, rflags, rsp, ss`, and
/// jumps to the `iret` stub of the hypercall page, which pushes `rcx, r11, rax` to complete the
/// [`IretContext`](crate::arch::IretContext). The handler runs with upcalls masked; `iret`
/// restores the mask the interrupted code had.
#[macro_export]
macro_rules! event_upcall {
    ($vis:vis fn $entry:ident => $handler:path) => {
        /// The event upcall entry (see `hypercall_abi::event_upcall!`).
        $vis fn $entry() -> $crate::guest::CallbackEntry {
            extern "C" fn glue() {
                $handler()
            }

            #[unsafe(naked)]
            extern "C" fn stub() {
                ::core::arch::naked_asm!(
                    "pop rcx",
                    "pop r11",
                    "push rax",
                    "push rcx",
                    "push rdx",
                    "push rsi",
                    "push rdi",
                    "push r8",
                    "push r9",
                    "push r10",
                    "push r11",
                    "push rbx",
                    "mov rbx, rsp",
                    "and rsp, -16",
                    "cld",
                    "call {glue}",
                    "mov rsp, rbx",
                    "pop rbx",
                    "pop r11",
                    "pop r10",
                    "pop r9",
                    "pop r8",
                    "pop rdi",
                    "pop rsi",
                    "pop rdx",
                    "pop rcx",
                    "pop rax",
                    "push 0",
                    "jmp hypercall_page + 23 * 32",
                    glue = sym glue,
                )
            }

            // SAFETY: `stub` pops rcx and r11, preserves every register of the interrupted
            // code, and returns through the iret hypercall: the event-callback convention.
            unsafe {
                $crate::guest::CallbackEntry::new_unchecked($crate::VAddr(
                    stub as *const () as u64,
                ))
            }
        }
    };
}
