#!/usr/bin/perl

# The steady heartbeat (README "Performance"): a RegisterPeer from the
# address and port a peer with a key was heard from last, with no stream
# of it, is answered from the peer's slot of the index alone, without its
# record.  Whatever would make the full path answer otherwise must take
# it: another port (the punch hole goes to the new one), another IP, a
# registration over TCP (the peer is reached through its stream and is
# asked for its key over UDP), a stream closed, a key registered again.
# The online count follows the heartbeats that take the short way from
# second to second, on both workers, and lets them go when they stop.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_value host_address /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text /;
use RustDesk::Metrics;

my $t = Test::Nginx->new()->has()->plan(21);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_online_timeout 3s;',
	'rustdesk_ip_blocker 1000 1000;',
], srv_rendezvous(0),
	srv_block([ '127.0.0.1:%%PORT_1%%' ], 'rustdesk_metrics;')));

$t->run();

my $key = $t->key();

# A non-loopback address of this host, for the IP change (loopback never
# counts as one).

my $ext = host_address();

###############################################################################

# RegisterPeer for $id from socket $u: its answer as text.
sub beat {
	my ($u, $id) = @_;
	$u->send_msg(register_peer => { id => $id, serial => 0 });
	return msg_text($u->recv_msg());
}

# A PunchHoleRequest for $id from a new TCP connection: which of the UDP
# sockets (name => socket) heard the PunchHole, space-separated.
sub punched {
	my ($id, %socks) = @_;

	my $rq = RustDesk::Client->tcp(port(0), LocalAddr => '127.0.0.2');
	$rq->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1, version => '1.3.0' });

	my @heard;

	for my $name (sort keys %socks) {
		my ($type) = $socks{$name}->recv_msg(0.5);
		push @heard, $name if ($type // '') eq 'punch_hole';
	}

	$rq->close();
	return join(' ', @heard) || 'none';
}

sub online {
	return scrape(port(1))->{rustdesk_rendezvous_peers_online} // 'none';
}

my $OK = 'register_peer_response{}';
my $ASK = 'register_peer_response{request_pk=1}';

###############################################################################

# steady heartbeats from one socket: the same answer each time, and the
# peer reached there

my $p = RustDesk::Client->udp_peer(port(0), 'hb-peer-1',
	LocalAddr => '127.0.0.1');
my ($a, $pk) = ($p->{udp}, $p->{pk});

is(join(' ', map { beat($a, 'hb-peer-1') } 1 .. 5), join(' ', ($OK) x 5),
	'5 heartbeats from the same address: no key asked');
is(punched('hb-peer-1', a => $a), 'a', 'punch hole to that address');

# another port of the same IP: no key asked (the IP is the same), and the
# peer is reached at the new port from its first heartbeat on

my $b = RustDesk::Client->udp(port(0), LocalAddr => '127.0.0.1');

is(beat($b, 'hb-peer-1'), $OK, 'a heartbeat from another port');
is(punched('hb-peer-1', a => $a, b => $b), 'b',
	'punch hole to the new port, not the old one');
is(join(' ', map { beat($b, 'hb-peer-1') } 1 .. 3), join(' ', ($OK) x 3),
	'steady from the new port');
is(beat($a, 'hb-peer-1'), $OK, 'back to the first port');
is(punched('hb-peer-1', a => $a, b => $b), 'a',
	'punch hole to the first port again');

# another IP: the key is asked for, and the address stays until a
# RegisterPk from there

SKIP: {
	skip 'no non-loopback address on this host', 3 unless $ext;

	my $x = RustDesk::Client->udp(port(0), LocalAddr => $ext);

	is(beat($x, 'hb-peer-1'), $ASK, 'a heartbeat from another IP: key asked');
	is(beat($x, 'hb-peer-1'), $ASK, 'and again: still asked');
	is(punched('hb-peer-1', a => $a, x => $x), 'a',
		'the peer is still reached at its address');
}

is(join(' ', map { beat($a, 'hb-peer-1') } 1 .. 2), "$OK $OK",
	'heartbeats from the first port: no key asked');

# registered over TCP: reached through the stream, so that a heartbeat
# over UDP, however steady before, is asked for the key

my $s = RustDesk::Client->tcp(port(0), LocalAddr => '127.0.0.1');
$s->send_msg(register_pk => { id => 'hb-peer-1', uuid => 'uuid-hb-peer-1',
	pk => $pk });
is(msg_text($s->recv_msg()), 'register_pk_response{keep_alive=30}',
	'the same peer registers over TCP');
is(beat($a, 'hb-peer-1'), $ASK,
	'a heartbeat over UDP after it: key asked (the stream reaches it)');
is(beat($a, 'hb-peer-1'), $ASK, 'and again');

# the stream closes: over UDP again, with no key asked

$s->close();

is(wait_value(sub { beat($a, 'hb-peer-1') }, $OK, 5), $OK,
	'the stream closed: a heartbeat over UDP is not asked for the key');
is(punched('hb-peer-1', a => $a), 'a', 'punch hole over UDP again');

# a key registered again (over UDP, from the same address): still steady

$a->send_msg(register_pk => { id => 'hb-peer-1', uuid => 'uuid-hb-peer-1',
	pk => $pk });
is(msg_text($a->recv_msg()), 'register_pk_response{}', 'RegisterPk again');
is(join(' ', map { beat($a, 'hb-peer-1') } 1 .. 2), "$OK $OK",
	'steady heartbeats after it');

###############################################################################

# the online count: 12 peers whose heartbeats, each from its own socket
# (spread over both workers), cross from second to second with
# rustdesk_online_timeout 3s: counted once each throughout, and gone when
# they stop

my @peers = map { RustDesk::Client->udp_peer(port(0), "hb-count-$_") }
	1 .. 12;

my (@seen, @bad);
my $end = time() + 7;

while (time() < $end) {
	for my $q (@peers) {
		my $r = beat($q->{udp}, $q->{id});
		push @bad, "$q->{id}: $r" if $r ne $OK;
	}

	push @seen, online();
	sleep(0.5);
}

is(join(', ', @bad), '', 'every heartbeat answered without a key asked');

# hb-peer-1 went quiet above, and is out of the count within 3 to 5 s

my %n = map { $_ => 1 } @seen[-4 .. -1];
is(join(' ', sort keys %n), '12', 'online: the 12, and only them, for the '
	. 'last 2 s of 7 s of heartbeats (' . join(' ', @seen) . ')');
is(wait_value(\&online, '0', 8), '0',
	'online: none, a few seconds after the heartbeats stopped');

###############################################################################
