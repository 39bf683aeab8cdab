#!/usr/bin/perl

# The benchmarks of bench/ still run: bench/run --smoke runs every one of
# them at tiny sizes (a few seconds each, its own nginx instances on free
# loopback ports, the CPU idle check skipped), and each must complete,
# print its figures and its rows of the summary, and report no problem
# (no [error]/[alert]/[crit] line, no dead worker, no lost, wrong or
# failed answer, flow or pair, no generator that failed).  No figure is
# checked: tiny runs on a shared machine say nothing about speed.
#
# bench/exposed --smoke, the attacks on an exposed server at tiny sizes (a
# second or two a part), likewise: each part must run to its end and
# print its rows of the summary, and the server must report no problem
# (no [alert]/[crit]/[emerg] line, no dead worker, no socket kept, no
# connection held past its deadline, no answer larger than its datagram,
# no unticketed connection kept, no brokered session lost, no pinging
# pair broken, no worker replaced by the fuzz).

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx;
use RustDesk::Redis;

# the twelve benchmarks, each with a line its generator prints when it ran
# to its end, and the start of one of its rows in the summary (cluster only
# with Debian's redis-server, which it starts)
my @BENCHES = (
	[ udp_heartbeat => qr/^ratio rendezvous\/baseline: [\d.]+$/m,
		qr/^UDP heartbeats\/s \(\d+ peers\)\s+\d/m ],
	[ heartbeat_scale =>
		qr/^\s+reload with \d+ peers: [\d.]+ s until new workers answer; 1000 of 1000 random peers still known$/m,
		qr/^  heartbeat CPU, \d+ peers \(us\)\s+[\d.]+\s+[\d.]+\s+[\d.]+ /m ],
	[ punch_rtt => qr/^\s+rendezvous\s+p50\s+[\d.]+ us/m,
		qr/^punch RTT p99 \(us\)\s+\d/m ],
	[ zone_memory => qr/bytes of zone \/ \d+ peers = [\d.]+ bytes per peer/,
		qr/^zone \d+m bytes\/peer\s+[\d.]+\s+\d+->\d+ /m ],
	[ stream_heartbeat =>
		qr/^an empty frame on each of the \d+ registered streams: \d+ answered/m,
		qr/^stream heartbeats\/s \(\d+ streams\)\s+\d/m ],
	[ relay_throughput => qr/^\s+relay\s+[\d.]+ MB\/s/m,
		qr/^  the same, equal buffers\s+[\d.]+\s+[\d.]+\s+[\d.]+ /m ],
	[ relay_latency => qr/^\s+p99 relay \/ proxy_eq, per round: +min [\d.]+/m,
		qr/^relay RTT p99 \(us\), 3 pair\(s\)\s+[\d.]+\s+[\d.]+\s+[\d.]+ /m ],
	[ relay_memory => qr/^\s+relay\s+\d+ pairs: VmRSS of 2 workers/m,
		qr/^relay bytes\/pair \(VmRSS\), idle\s+-?\d/m ],
	[ relay_ws => qr/^\s+WS<->WS\s+[\d.]+ MB\/s/m,
		qr/^relay WS MB\/s, \d+ pair\(s\), A->B\s+[\d.]+/m ],
	[ relay_scale => qr/^\s+relay\s+nginx workers [\d.]+ cores/m,
		qr/^relay at scale: nginx cores\s+[\d.]+\s+[\d.]+ /m ],
	[ tickets => qr/^on \/ off, per round: punch p50 min [\d.]+/m,
		qr/^tickets on\/off: relay pairs\/s\s+\d+\s+\d+\s+[\d.]+ /m ],
	RustDesk::Redis->available() ? ([ cluster =>
		qr/^\s+a million peers at this pace: \d+ Redis commands\/s/m,
		qr/^cluster punch RTT p99 \(us\)\s+\d+\s+\d+\s+[\d.]+ /m ]) : (),
);

# the seven parts of bench/exposed, each with the start of one of its rows
# in the summary
my @PARTS = (
	[ ws_rst => qr/^WS upgrade\+RST flood: \d+ in [\d.]+ s\s+peak \+\d+/m ],
	[ drip =>
		qr/^slow drip \(1 B\/s\): relay RequestRelay\s+held [\d.]+ s/m ],
	[ hold => qr/^\d+\/s idle conns, deadline \d+s, limit_conn \d+\/IP\s+peak/m ],
	[ ping =>
		qr/^ping flood [\d.]+ MB, pongs unread: worker\s+[\d.]+ ms CPU per MB/m ],
	[ amplify =>
		qr/^UDP amplification, max out\/in \(unproven src\)\s+[\d.]+/m ],
	[ unticketed =>
		qr/^unticketed RequestRelay flood, \d+\/s\s+\d+\/\d+ refused/m ],
	[ fuzz => qr/^fuzz \d+ s: inputs at every port\s+\d+\s+workers alive/m ],
);

my $t = Test::Nginx->new()->has();

plan(skip_all => 'no gcc to build the load generators')
	unless grep { -x "$_/gcc" } split /:/, $ENV{PATH};

plan(tests => 6 + 2 * @BENCHES + 2 * @PARTS);

# the nginx and modules the rest of the suite uses (make test-nginx too)
local $ENV{NGINX} = $Test::Nginx::NGINX;
local $ENV{NGINX_STREAM_MODULE} = $Test::Nginx::STREAM_MODULE;
local $ENV{RUSTDESK_MODULES} = $Test::Nginx::MODULES;
local $ENV{TMPDIR} = $t->testdir();
local $ENV{REDIS_SERVER} = $RustDesk::Redis::SERVER;

# the smoke run's own sizes, whatever the caller's environment says
delete @ENV{qw/ HB_PEERS HB_SECONDS HB_ROUNDS HB_WINDOW HS_PEERS STREAM_PEERS
	STREAM_HOLD PUNCH_FLOWS ZONE_SPECS RELAY_PAIRS RELAY_SECONDS
	RELAY_ROUNDS RELAY_BUFFER PING_PAIRS PING_TRIPS PING_ROUNDS MEM_PAIRS
	MEM_BATCH MEM_HOLD SCALE_PAIRS SCALE_CHUNK SCALE_SECONDS SCALE_RAMP_MS
	TICKET_PUNCH TICKET_FLOWS TICKET_AT_ONCE TICKET_ROUNDS CLUSTER_FLOWS
	CLUSTER_PEERS CLUSTER_HB_INTERVAL CLUSTER_HB_SECONDS CLUSTER_REGS
	CLUSTER_ROUNDS
	FLOOD_CONNS FLOOD_RATE LEGIT_SECONDS DRIP_DEADLINE HOLD_RATE HOLD_SECONDS
	HOLD_DEADLINE PING_MB NOTICKET_RATE NOTICKET_SECONDS NOTICKET_SESSIONS
	FUZZ_SECONDS NGINX_LIFE BENCH_KEEP /};

# bench/run stops every nginx it started, and each stops by itself after
# its NGINX_LIFE anyway; timeout(1) only ends a run that hangs
my $out = `timeout -k 10 600 bench/run --smoke 2>&1`;
my $rc = $? >> 8;

is($rc, 0, 'bench/run --smoke exits 0');

my ($summary) = $out =~ /^== summary[^\n]*\n(.*)\z/ms;

ok(defined $summary, 'the summary printed');
$summary //= '';

my ($problems) = $out =~ /^server problems noticed:\n(.*)/ms;

ok(!defined $problems, 'no problem noticed') or diag($problems);

for my $b (@BENCHES) {
	my ($name, $ran, $row) = @$b;
	my ($part) = $out =~ /^== \Q$name\E:(.*?)(?=^== )/ms;

	like($part // '', $ran, "$name ran to its end");
	like($summary, $row, "$name: its row in the summary");
}

diag("bench/run --smoke:\n$out") unless Test::More->builder->is_passing;

###############################################################################

my $failed = grep { !$_ } Test::More->builder->summary;

$out = `timeout -k 10 300 $^X bench/exposed --smoke 2>&1`;
$rc = $? >> 8;

is($rc, 0, 'bench/exposed --smoke exits 0');

($summary) = $out =~ /^== summary[^\n]*\n(.*)\z/ms;

ok(defined $summary, 'bench/exposed: the summary printed');
$summary //= '';

($problems) = $out =~ /^server problems noticed:\n(.*)/ms;

ok(!defined $problems, 'bench/exposed: no problem noticed')
	or diag($problems);

for my $p (@PARTS) {
	my ($name, $row) = @$p;

	like($out, qr/^== \Q$name\E: done$/m,
		"bench/exposed $name ran to its end");
	like($summary, $row, "bench/exposed $name: its rows in the summary");
}

diag("bench/exposed --smoke:\n$out")
	if (grep { !$_ } Test::More->builder->summary) > $failed;
