#!/usr/bin/perl

# UDP amplification (PROTOCOL.md section 6): with every directive that
# makes answers larger set (rustdesk_software_url, rustdesk_serial,
# rustdesk_rendezvous_servers), no datagram of any message type gets more
# bytes back than it had, unless it came from the registered IP of a peer
# with a key (its ConfigUpdate); and what a TCP request makes the server
# send to a peer over UDP stays the size of a real client's.
#
# "No more answers" is told without waiting out a timeout: a probe follows
# each message on the same socket (a RegisterPk with a 5-character id,
# answered UUID_MISMATCH), and one worker handles a socket's datagrams in
# order.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ encode_msg decode_msg msg_text mangle random_bytes /;

my $t = Test::Nginx->new()->has()->plan(6);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
	'rustdesk_serial 9;',
	'rustdesk_rendezvous_servers ' . join(' ', map { "rendezvous$_.example.com:21116" } 1 .. 8) . ';',
	'rustdesk_software_url https://download.example.com/rustdesk/releases/rustdesk-9.9.9-x86_64.exe;',
	'rustdesk_relay_servers relay.example.com:21117;',
], srv_rendezvous(0), srv_nat_test(1)));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');
my $peer = RustDesk::Client->udp_peer(port(0), 'amp-peer1');
my $a = mangle('127.0.0.1', 40000);

# every message type a client may send, and the smallest forms of the
# ones whose answers could be large

my @messages = (
	[ register_peer => { id => 'x' } ],
	[ register_peer => { id => 'amp-new', serial => 0 } ],
	[ register_peer => { id => 'amp-peer1', serial => 0 } ],
	[ register_pk => { id => 'amp-new2', uuid => 'u', pk => 'k' } ],
	[ register_pk => { id => 'amp-peer1', uuid => 'other', pk => 'k' } ],
	[ software_update => { url => '1' } ],
	[ software_update => { url => '' } ],
	[ configure_update => { serial => 100,
		rendezvous_servers => [ 'a' ] } ],
	[ punch_hole_request => { id => 'amp-peer1', licence_key => $key } ],
	[ punch_hole_sent => { socket_addr => $a, id => 'amp-peer1' } ],
	[ local_addr => { socket_addr => $a, local_addr => $a,
		id => 'amp-peer1' } ],
	[ relay_response => { socket_addr => $a, uuid => 'u', id => 'amp-peer1' } ],
	[ request_relay => { id => 'amp-peer1', uuid => 'u' } ],
	[ test_nat_request => { serial => 0 } ],
	[ online_request => { id => 'x', peers => [ 'amp-peer1' ] } ],
	[ fetch_local_addr => { socket_addr => $a } ],
	[ punch_hole => { socket_addr => $a } ],
	[ key_exchange => { keys => [ random_bytes(32) ] } ],
);

my @bad;

for my $m (@messages) {
	# from a socket of another IP than the peer's: a source that proves
	# nothing
	my $s = RustDesk::Client->udp(port(0), LocalAddr => '127.0.0.2');
	my $in = length encode_msg(@$m);
	my ($out, $what) = answered($s, @$m);

	push @bad, "$m->[0] ($in bytes): $out bytes back: $what" if $out > $in;
}

is(join("\n", @bad), '', 'no message type gets more bytes back than it had');

# garbage of every size up to 64 bytes

@bad = ();

for my $len (1 .. 64) {
	my $s = RustDesk::Client->udp(port(0), LocalAddr => '127.0.0.3');
	$s->send_raw(random_bytes($len));
	my ($out) = answered($s);
	push @bad, "$len bytes of garbage: $out bytes back" if $out > $len;
}

is(join("\n", @bad), '', 'garbage: never more bytes back');

# the peer itself, from its registered socket: its ConfigUpdate, larger
# than the heartbeat, as a client needs it

my ($out, $what) = answered($peer->{udp}, register_peer =>
	{ id => 'amp-peer1', serial => 0 });
like($what, qr/configure_update\{rendezvous_servers=rendezvous1\.example\.com:21116,.* serial=9\}/,
	'the registered peer gets its ConfigUpdate');

# a request over TCP that would have the server send a huge datagram to
# the peer: not sent, the requester told the peer is offline

my $c = RustDesk::Client->tcp(port(0));
$c->send_msg(punch_hole_request => { id => 'amp-peer1', licence_key => $key,
	socket_addr_v6 => 'v' x 60000 });
my ($type, $r) = $c->recv_msg();
is(msg_text($type, $r), 'punch_hole_response{failure=2}',
	'a PunchHoleRequest of 60 KB: not passed on, OFFLINE');
$c->close();

$c = RustDesk::Client->tcp(port(0));
$c->send_msg(request_relay => { id => 'amp-peer1', uuid => 'big',
	licence_key => $key, token => 't' x 60000 });
ok($t->wait_log(qr/RequestRelay of 6\d{4} bytes for peer "amp-peer1" not sent/,
	1, 5), 'a RequestRelay of 60 KB: not passed on, logged');
$c->close();

($out, $what) = answered($peer->{udp});
is($what, '', 'the peer heard nothing of either');

###############################################################################

# Sends the message (if any) and the probe on $s: (bytes that came back
# before the probe's answer, what they were as text).
sub answered {
	my ($s, @m) = @_;
	my ($bytes, @what) = (0);

	$s->send_msg(@m) if @m;
	$s->send_msg(register_pk => { id => 'probe', uuid => 'p', pk => 'p' });

	for (;;) {
		my $p = $s->recv_payload();
		return ($bytes, join(' ', @what, 'timeout')) unless defined $p;

		my ($rt, $f) = decode_msg($p);
		last if ($rt // '') eq 'register_pk_response'
			&& ($f->{result} // 0) == 2;

		$bytes += length $p;
		push @what, msg_text($rt, $f) || 'undecodable';
	}

	return ($bytes, join(' ', @what));
}

###############################################################################
