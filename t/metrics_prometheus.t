#!/usr/bin/perl

# A real Prometheus server (Debian's prometheus package) scrapes the
# metrics listener every second; after known traffic (registrations, punch
# hole requests with known results, relayed sessions of known size), its
# PromQL queries over the HTTP API return exactly those numbers.  The test
# waits for the scrape that has them, never for a fixed time.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text /;
use RustDesk::Metrics;
use RustDesk::Session;

my $t = Test::Nginx->new()->has();

plan(skip_all => 'no prometheus (Debian package prometheus)')
	unless has_prometheus();

$t->plan(10);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_1%%;',
	'rustdesk_ip_blocker 1000 1000;',
	'rustdesk_online_timeout 10m;',           # online throughout the test
], srv_rendezvous(0), srv_relay(1),
	srv_block([ '127.0.0.1:%%PORT_2%%' ], 'rustdesk_metrics;')));

$t->run();

my $key = $t->key();
my $prom = RustDesk::Metrics::Prometheus->start($t, port(2), 3);

is(wait_until_up($prom), 'up', 'Prometheus scrapes the listener');

###############################################################################

# N registrations, M punch hole requests with known results, K relayed
# sessions of known size

my ($N, $K) = (7, 3);
my @peers = map { RustDesk::Client->udp_peer(port(0), "promp$_") } 1 .. $N;

my %punch = (OK => 2, ID_NOT_EXIST => 3, LICENSE_MISMATCH => 1);

punch($peers[$_]{id}, $key) for 0 .. $punch{OK} - 1;
punch("unknown$_", $key) for 1 .. $punch{ID_NOT_EXIST};
punch($peers[0]{id}, 'not-the-key') for 1 .. $punch{LICENSE_MISMATCH};

my @bad = grep { $_ } map {
	RustDesk::Session::relayed_session(rendezvous_port => port(0),
		relay_port => port(1), key => $key)
} 1 .. $K;
is(join('; ', @bad), '', "$K relayed sessions");

# each session registers its B over UDP too: N + K registrations

is($prom->wait_value('sum(rustdesk_rendezvous_registrations_total'
	. '{transport="udp",result="OK"})', $N + $K), $N + $K,
	'registrations: N + K');
is($prom->wait_value('sum(rustdesk_rendezvous_heartbeats_total'
	. '{result="OK"})', $N + $K), $N + $K, 'heartbeats: N + K');

for my $r (sort keys %punch) {
	is($prom->wait_value('sum(rustdesk_rendezvous_punch_requests_total'
		. qq/{result="$r"})/, $punch{$r}), $punch{$r},
		"punch hole requests $r: $punch{$r}");
}

is($prom->wait_value('sum(rustdesk_relay_sessions_total{result="paired"})',
	$K), $K, 'relayed sessions: K');

# 12 bytes one way and 65536 the other in each (RustDesk::Session)

is($prom->wait_value('sum(rustdesk_relay_bytes_total)', $K * 65548),
	$K * 65548, 'bytes relayed: K x 65548');

is($prom->wait_value('sum(rustdesk_rendezvous_peers_online)', $N + $K),
	$N + $K, 'peers online: N + K');

$prom->stop();

###############################################################################

# the target up, after a scrape that worked (30 s at most)
sub wait_until_up {
	my ($p) = @_;
	my $got;
	Test::Nginx::wait_until(sub { ($got = $p->target()) eq 'up' }, 30, 0.2);
	return $got;
}

# A PunchHoleRequest on a new connection; an answer, if any, read.
sub punch {
	my ($id, $licence) = @_;
	my $c = RustDesk::Client->tcp(port(0));
	$c->send_msg(punch_hole_request => { id => $id, licence_key => $licence,
		nat_type => 1 });
	$c->recv_msg($id =~ /^promp/ && $licence eq $key ? 0.2 : 3);
	$c->close();
}

###############################################################################
