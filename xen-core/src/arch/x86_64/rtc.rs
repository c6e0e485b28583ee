//! The CMOS real-time clock, read once at boot for the guests' wallclock.

use x86_64::instructions::port::Port;

fn read(reg: u8) -> u8 {
    let mut idx = Port::<u8>::new(0x70);
    let mut data = Port::<u8>::new(0x71);
    // SAFETY: CMOS index/data ports; selecting a register and reading it has no side effect
    // beyond the index latch (NMI-disable bit left clear).
    unsafe {
        idx.write(reg & 0x7F);
        data.read()
    }
}

fn bcd(v: u8) -> u64 {
    u64::from((v & 0x0F) + (v >> 4) * 10)
}

/// The RTC as Unix seconds, or `None` if it reads as nonsense.
pub fn read_unix_seconds() -> Option<u64> {
    // Wait out an update in progress so the fields are consistent.
    for _ in 0..100_000 {
        if read(0x0A) & 0x80 == 0 {
            break;
        }
    }
    let is_bcd = read(0x0B) & 0x04 == 0;
    let conv = |v: u8| if is_bcd { bcd(v) } else { u64::from(v) };
    let (sec, min, hour) = (conv(read(0x00)), conv(read(0x02)), conv(read(0x04) & 0x7F));
    let (day, month, year) = (conv(read(0x07)), conv(read(0x08)), conv(read(0x09)) + 2000);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days since the epoch (civil-from-days, proleptic Gregorian).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}
