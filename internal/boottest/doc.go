// Package boottest holds the tests of sipwall as Debian ships it:
// scripts/package builds the .deb (reproducibly, lintian clean), and a Debian
// bookworm root built by mmdebstrap is booted under systemd-nspawn with real
// systemd as PID 1, where the package is installed, a policy applied and
// addresses banned, the units enabled and the container rebooted, guard
// started under its hardening, and the package purged, on both backends.
//
// The tests need root, mmdebstrap, systemd-nspawn, dpkg-deb and lintian.
// The bookworm root is cached as a tarball in /var/cache/sipwall-test
// ($SIPWALL_TEST_CACHE), keyed by its package list.
package boottest
