#!/usr/bin/perl

# IPv6 (PROTOCOL.md sections 4 and 8): the rendezvous port listening on
# both 127.0.0.1 and ::1; a peer registered over IPv6 UDP is reached from
# its IPv6 UDP listener, a requester over IPv4 gets an IPv6 peer's address
# (AddrMangle's 18-byte form) and the other way round; the NAT test
# answers an IPv6 client with its port; two peers on ::1 are on one host.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ demangle /;

my $t = Test::Nginx->new()->has()->plan(12);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database off;',
], srv_rendezvous(1, ipv6 => 1),
	srv_nat_test(2, host => '[::1]', reuseport => 0)));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');
my $nb = 0;
my $V6 = { PeerHost => '::1' };

###############################################################################

# B over IPv6, A over IPv4

my $b = peer_b(PeerHost => '::1');
ok($b, 'RegisterPk and RegisterPeer over IPv6 UDP');

my $a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0' });

my ($type, $m) = $b->{udp}->recv_msg();
is(($type // '') . ' ' . join(':', demangle($m->{socket_addr} // '')),
	'punch_hole 127.0.0.2:' . $a->sockport(),
	'IPv6 peer: PunchHole over IPv6 UDP with the IPv4 requester');

my $bt = RustDesk::Client->tcp(port(1), PeerHost => '::1');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b->{id}, relay_server => '', nat_type => 1, version => '1.3.0' });

($type, $m) = $a->recv_msg();
is(($type // '') . ' ' . length($m->{socket_addr} // '') . ' '
	. join(':', demangle($m->{socket_addr} // '')),
	'punch_hole_response 18 ::1:' . $bt->sockport(),
	'IPv4 requester: the IPv6 peer\'s address, 18 bytes');

# B over IPv4, A over IPv6

my $b4 = peer_b(LocalAddr => '127.0.0.3');

$a = RustDesk::Client->tcp(port(1), PeerHost => '::1');
$a->send_msg(punch_hole_request => { id => $b4->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0' });

($type, $m) = $b4->{udp}->recv_msg();
is(($type // '') . ' ' . join(':', demangle($m->{socket_addr} // '')),
	'punch_hole ::1:' . $a->sockport(),
	'IPv4 peer: PunchHole with the IPv6 requester');

$bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.3');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b4->{id}, relay_server => '', nat_type => 1, version => '1.3.0' });

($type, $m) = $a->recv_msg();
is(($type // '') . ' ' . join(':', demangle($m->{socket_addr} // '')),
	'punch_hole_response 127.0.0.3:' . $bt->sockport(),
	'IPv6 requester: the answer over IPv6 TCP');

# both on ::1: one host, FetchLocalAddr, LocalAddr back

my $b6 = peer_b(PeerHost => '::1');

$a = RustDesk::Client->tcp(port(1), PeerHost => '::1');
$a->send_msg(punch_hole_request => { id => $b6->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0' });

($type, $m) = $b6->{udp}->recv_msg();
is($type, 'fetch_local_addr', 'both on ::1: FetchLocalAddr');

$bt = RustDesk::Client->tcp(port(1), PeerHost => '::1');
$bt->send_msg(local_addr => { socket_addr => $m->{socket_addr},
	local_addr => $m->{socket_addr}, id => $b6->{id}, relay_server => '',
	version => '1.3.0' });

($type, $m) = $a->recv_msg();
is(($type // '') . ' ' . ($m->{is_local} ? 'local' : 'not local'),
	'punch_hole_response local', 'both on ::1: LocalAddr answered');

# RequestRelay to an IPv6 peer, RelayResponse back

$a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(request_relay => { id => $b->{id}, uuid => 'v6-1',
	relay_server => '127.0.0.1:21117', licence_key => $key });

($type, $m) = $b->{udp}->recv_msg();
is($type, 'request_relay', 'IPv6 peer: RequestRelay over IPv6 UDP');

$bt = RustDesk::Client->tcp(port(1), PeerHost => '::1');
$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
	uuid => 'v6-1', relay_server => '127.0.0.1:21117', id => $b->{id},
	version => '1.3.0' });

($type, $m) = $a->recv_msg();
is(($type // '') . ' ' . ($m->{uuid} // ''), 'relay_response v6-1',
	'IPv4 requester: RelayResponse from the IPv6 peer');

# the NAT test over IPv6

my $n = RustDesk::Client->tcp(port(2), PeerHost => '::1');
$n->send_msg(test_nat_request => { serial => 0 });
($type, $m) = $n->recv_msg();
is(($type // '') . ' ' . ($m->{port} // ''),
	'test_nat_response ' . $n->sockport(), 'NAT test over IPv6');

# the online query knows the IPv6 peer

$n = RustDesk::Client->tcp(port(2), PeerHost => '::1');
$n->send_msg(online_request => { id => 'x', peers => [ $b->{id}, 'none' ] });
($type, $m) = $n->recv_msg();
is($type, 'online_response', 'online query over IPv6');
is(unpack('C', $m->{states} // "\0") & 0x80, 0x80,
	'online query: the IPv6 peer is online');

###############################################################################

# B registered over UDP (RegisterPk, then RegisterPeer); %o: socket options

sub peer_b {
	my (%o) = @_;
	return eval { RustDesk::Client->udp_peer(port(1),
		sprintf('v6-b-%03d', ++$nb), %o) };
}

###############################################################################
