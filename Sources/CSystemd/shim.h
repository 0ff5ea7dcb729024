#pragma once
/* Thin shim over libsystemd: sd_notify, sd_watchdog_enabled and sd_journal_sendv.
 * The variadic sd_notifyf/sd_journal_send cannot be called from Swift; the
 * non-variadic forms are used instead. */
#include <stdio.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/* The Swift 6 language mode rejects touching the C global `stdout`; line-buffer it here
 * so that `make run` prints each log line as it happens even when piped. */
static inline void csd_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); setvbuf(stderr, NULL, _IOLBF, 0); }
