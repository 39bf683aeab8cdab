#!/usr/bin/perl

# The fields newer clients use for direct connections (PROTOCOL.md section
# 8, hbb_common's rendezvous.proto): PunchHoleRequest's udp_port,
# force_relay, upnp_port and socket_addr_v6 reach B in PunchHole (and the
# IPv6 address in FetchLocalAddr); PunchHoleSent's upnp_port and
# socket_addr_v6, LocalAddr's socket_addr_v6 and RelayResponse's
# socket_addr_v6 and upnp_port reach A.  The values are opaque to the
# server: they are passed on as they came.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ mangle /;

my $t = Test::Nginx->new()->has()->plan(12);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
], srv_rendezvous(1)));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');
my $V6 = mangle('2001:db8::17', 40001);
my $nb = 0;

###############################################################################

# A at 127.0.0.2, B at 127.0.0.3: PunchHole with every field

my $b = peer_b('127.0.0.3');

my $a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0', udp_port => 35001,
	force_relay => 1, upnp_port => 35002, socket_addr_v6 => $V6 });

my ($type, $m) = $b->{udp}->recv_msg();

is($type, 'punch_hole', 'PunchHole');
is(join(' ', map { $m->{$_} // 'none' } qw/ udp_port force_relay upnp_port /)
	. ' ' . (($m->{socket_addr_v6} // '') eq $V6 ? 'v6' : 'no v6'),
	'35001 1 35002 v6', 'PunchHole: udp_port, force_relay, upnp_port, '
	. 'socket_addr_v6 passed on');

# B answers with its own: A gets them in PunchHoleResponse

my $bv6 = mangle('2001:db8::42', 40002);
my $bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.3');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b->{id}, relay_server => '', nat_type => 2, version => '1.3.0',
	upnp_port => 36001, socket_addr_v6 => $bv6 });

($type, $m) = $a->recv_msg();

is($type, 'punch_hole_response', 'PunchHoleResponse');
is(($m->{upnp_port} // 'none') . ' '
	. (($m->{socket_addr_v6} // '') eq $bv6 ? 'v6' : 'no v6'),
	'36001 v6', 'PunchHoleResponse: upnp_port and socket_addr_v6 of B');

# A and B on one IP: FetchLocalAddr carries A's IPv6 address, and LocalAddr
# brings B's back

my $b2 = peer_b('127.0.0.4');
my $a2 = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.4');
$a2->send_msg(punch_hole_request => { id => $b2->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0', socket_addr_v6 => $V6 });

($type, $m) = $b2->{udp}->recv_msg();

is(($type // '') . ' '
	. (($m->{socket_addr_v6} // '') eq $V6 ? 'v6' : 'no v6'),
	'fetch_local_addr v6', 'FetchLocalAddr: socket_addr_v6 passed on');

$bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.4');
$bt->send_msg(local_addr => { socket_addr => $m->{socket_addr},
	local_addr => mangle('192.168.1.9', 21118), id => $b2->{id},
	relay_server => '', version => '1.3.0', socket_addr_v6 => $bv6 });

($type, $m) = $a2->recv_msg();

is(($type // '') . ' ' . ($m->{is_local} ? 'local' : 'not local') . ' '
	. (($m->{socket_addr_v6} // '') eq $bv6 ? 'v6' : 'no v6'),
	'punch_hole_response local v6', 'LocalAddr: socket_addr_v6 of B');

# RequestRelay / RelayResponse

my $a3 = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a3->send_msg(request_relay => { id => $b->{id}, uuid => 'f-1',
	relay_server => '127.0.0.1:21117', licence_key => $key });

($type, $m) = $b->{udp}->recv_msg();

$bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.3');
$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
	uuid => 'f-1', relay_server => '127.0.0.1:21117', id => $b->{id},
	version => '1.3.0', socket_addr_v6 => $bv6, upnp_port => 36002 });

($type, $m) = $a3->recv_msg();

is($type, 'relay_response', 'RelayResponse');
is(($m->{upnp_port} // 'none') . ' '
	. (($m->{socket_addr_v6} // '') eq $bv6 ? 'v6' : 'no v6'),
	'36002 v6', 'RelayResponse: socket_addr_v6 and upnp_port of B');

# PunchHoleSent over UDP, from a new socket of B's (the client punches
# with one of its own, and A must learn that socket's address as the
# server sees it): A gets it with is_udp; nothing goes back over UDP

$a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0', udp_port => 35003 });

($type, $m) = $b->{udp}->recv_msg();

my $punch = RustDesk::Client->udp(port(1), LocalAddr => $b->{ip});
$punch->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b->{id}, relay_server => '', nat_type => 1, version => '1.3.0',
	upnp_port => 36003 });

($type, $m) = $a->recv_msg();

my $budp = $punch->sock()->sockhost() . ':' . $punch->sockport();

is(($type // '') . ' ' . ($m->{is_udp} ? 'udp' : 'not udp') . ' '
	. join(':', RustDesk::Client::demangle($m->{socket_addr} // '')) . ' '
	. ($m->{upnp_port} // 'none'),
	"punch_hole_response udp $budp 36003",
	'PunchHoleSent over UDP: A gets it, is_udp, the punching socket');

# what must not come is looked for once, for all three cases below: after
# a second in which nothing may come to any of them

# ... but only from the IP B registered from: another IP's is ignored and
# A hears nothing

$a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0' });

($type, $m) = $b->{udp}->recv_msg();

my $spoof = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.4');
$spoof->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b->{id}, relay_server => '', nat_type => 1, version => '1.3.0' });

# a PunchHoleSent over UDP for nobody waiting: nothing anywhere

$b->{udp}->send_msg(punch_hole_sent => {
	socket_addr => mangle('127.0.0.9', 40000), id => $b->{id},
	relay_server => '', nat_type => 1, version => '1.3.0' });

sleep 1;        # a sleep: the second in which nothing may come

my ($back) = $punch->recv_msg(0.01);
ok(!defined $back, 'PunchHoleSent over UDP: nothing back to the sender');

($type) = $a->recv_msg(0.01);
ok(!defined $type, 'PunchHoleSent over UDP from another address: ignored');

my ($back2) = $b->{udp}->recv_msg(0.01);
ok(!defined $back2, 'PunchHoleSent over UDP for nobody: no answer');

###############################################################################

# B registered over UDP from $ip (RegisterPk, then RegisterPeer).

sub peer_b {
	my ($ip) = @_;
	return RustDesk::Client->udp_peer(port(1),
		sprintf('fields-b-%03d', ++$nb), LocalAddr => $ip);
}

###############################################################################
