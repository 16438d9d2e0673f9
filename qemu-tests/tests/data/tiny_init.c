/*
 * A tiny init for the qemu-tests boot tests, built static by the host
 * compiler (-m32 for i386). It prints known lines, then does what the
 * variant chosen at compile time says (/init gets no arguments we control):
 *
 *   -DVARIANT_EXIT   print "done" and exit 0 (the kernel then panics with
 *                    "Attempted to kill init! exitcode=0x00000000")
 *   -DVARIANT_FAIL   exit 7 at once (exitcode=0x00000700)
 *   -DVARIANT_HANG   print "hanging" and sleep forever
 *   -DVARIANT_FLOOD  print numbered lines forever, as fast as it can
 *   -DVARIANT_POWEROFF  print how many CPUs it may run on, then power off
 *                    with reboot(RB_POWER_OFF), as node does as PID 1 (the
 *                    kernel needs ACPI for it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#if !defined(VARIANT_EXIT) && !defined(VARIANT_FAIL) && !defined(VARIANT_HANG) && \
    !defined(VARIANT_FLOOD) && !defined(VARIANT_POWEROFF)
#error "choose a variant: -DVARIANT_EXIT, -DVARIANT_FAIL, -DVARIANT_HANG, -DVARIANT_FLOOD or -DVARIANT_POWEROFF"
#endif

int main(void) {
    struct utsname u;
    if (uname(&u) != 0)
        strcpy(u.machine, "unknown");
    /* stdout is /dev/console, a tty: line buffered, each line goes out. */
    printf("NODEOS-TINY-INIT start\n");
    printf("NODEOS-TINY-INIT pid=%d machine=%s\n", (int)getpid(), u.machine);
#if defined(VARIANT_EXIT)
    printf("NODEOS-TINY-INIT done\n");
    /* On the wire before the kernel's panic message: with more than one CPU
     * the UART may still be sending when init exits. */
    fflush(stdout);
    tcdrain(1);
    return 0;
#elif defined(VARIANT_FAIL)
    /* As for EXIT: the lines are on the wire before the kernel's panic. */
    fflush(stdout);
    tcdrain(1);
    _exit(7);
#elif defined(VARIANT_HANG)
    printf("NODEOS-TINY-INIT hanging\n");
    fflush(stdout);
    for (;;)
        pause();
#elif defined(VARIANT_FLOOD)
    for (unsigned long i = 0;; i++)
        printf("NODEOS-TINY-INIT flood %lu the quick brown fox jumps over the lazy dog\n", i);
#elif defined(VARIANT_POWEROFF)
    /* No /proc or /sys here: the affinity mask holds every online CPU. */
    cpu_set_t set;
    CPU_ZERO(&set);
    int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : -1;
    printf("NODEOS-TINY-INIT cpus=%d\n", cpus);
    fflush(stdout);
    tcdrain(1);
    sync();
    reboot(RB_POWER_OFF);
    printf("NODEOS-TINY-INIT power off failed: %s\n", strerror(errno));
    return 1;
#endif
}
