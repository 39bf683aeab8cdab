#!/usr/bin/perl

# TCP on the rendezvous server (PROTOCOL.md section 6): the NAT-test port
# (TestNatRequest, OnlineRequest, one message then close) and the main
# port (TestNatRequest with ConfigUpdate, PunchHoleRequest failures on a
# connection that stays open, RegisterPk NOT_SUPPORT, anything else
# closed, the idle timeout), and rustdesk_key "" accepting any key.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text msg_fields /;

my $t = Test::Nginx->new()->has()->plan(32);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_serial 3;',
], srv_hbbs(1, 0, reuseport => 0), srv_hbbs(2, 3, reuseport => 0, udp => 0,
	directives => [ 'rustdesk_timeout 1s;' ])));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');

###############################################################################

# (type, fields) as text, the fields sorted, defaults left out (proto3
# omits them on the wire: absent and 0/false/empty are the same)



# Everything the server sends until it closes, as text, then "closed"
# (or "open" when it is still open after 3 s of silence).

sub until_close {
	my ($c) = @_;
	my @got;

	while (my @m = $c->recv_msg(3)) {
		push @got, msg_text(@m);
	}

	push @got, $c->closed(0.5) ? 'closed' : 'open';
	return join(' ', @got);
}

# One message on a new connection: what came, up to the close.

sub once {
	my ($port, $type, $fields) = @_;
	my $c = RustDesk::Client->tcp($port);
	$c->send_msg($type, $fields);
	return until_close($c);
}

# The next message on an open connection.

sub next_msg {
	my ($c) = @_;
	return msg_text($c->recv_msg());
}

# OnlineResponse states for a list of peers, in hex, on the NAT-test port.

sub online {
	my (@peers) = @_;
	my $c = RustDesk::Client->tcp(port(0));

	$c->send_msg(online_request => { id => 'asker1', peers => [ @peers ] });

	my ($type, $m) = $c->recv_msg();
	return 'none' unless defined $type;
	return msg_text($type, $m) unless $type eq 'online_response';
	return 'hex:' . unpack('H*', $m->{states} // '')
		. ($c->closed() ? '' : ' (not closed)');
}

###############################################################################

# peers registered over UDP are online (for 30 s); a peer only heard from
# by RegisterPeer is unknown

my $u = RustDesk::Client->udp(port(1));
my @on = map { "nat-on-$_" } 1 .. 8;
my @reg;

for my $id (@on) {
	$u->send_msg(register_pk => { id => $id, uuid => "uuid-$id",
		pk => 'K' x 32 });
	my ($type, $m) = $u->recv_msg();
	push @reg, defined $type && $type eq 'register_pk_response'
		? ($m->{result} // 0) : 'none';
}

is("@reg", '0 0 0 0 0 0 0 0', 'peers registered');

$u->send_msg(register_peer => { id => 'nat-rp-only', serial => 3 });
is(msg_text($u->recv_msg()), 'register_peer_response{request_pk=1}',
	'peer heard from without a key');

# the NAT-test port

my $c = RustDesk::Client->tcp(port(0));
$c->send_msg(test_nat_request => { serial => 0 });
is(until_close($c), 'test_nat_response{port=' . $c->sockport() . '} closed',
	'NAT port: TestNatResponse with the source port, then close');

is(online($on[0], 'nat-unknown-1', $on[1], 'nat-rp-only', 'nat-unknown-2',
	$on[2], 'nat-unknown-3', 'nat-unknown-4', $on[3]),
	'hex:a480', 'OnlineResponse: 9 peers, 2 bytes, bit 7 - i % 8');
is(online(@on), 'hex:ff', 'OnlineResponse: 8 online, one byte');
is(online('nat-unknown-1', 'nat-unknown-2', $on[4], 'nat-unknown-3',
	'nat-unknown-4', 'nat-unknown-5', 'nat-unknown-6', $on[5],
	'nat-unknown-7', $on[6], 'nat-unknown-8', 'nat-unknown-9',
	'nat-unknown-10', 'nat-unknown-11', 'nat-unknown-12', 'nat-unknown-13',
	$on[7]), 'hex:214080', 'OnlineResponse: 17 peers, 3 bytes');
is(online('nat-unknown-1'), 'hex:00', 'OnlineResponse: one unknown');
is(online(), 'hex:', 'OnlineResponse: no peers, empty states');
is(online('', $on[0]), 'hex:40', 'OnlineResponse: empty id is unknown');

is(once(port(0), online_request => { id => 'asker1' }),
	'online_response{} closed', 'OnlineRequest without peers, then close');
is(once(port(0), register_peer => { id => $on[0] }), 'closed',
	'NAT port: RegisterPeer closed without answer');
is(once(port(0), punch_hole_request => { id => $on[0],
	licence_key => $key }), 'closed',
	'NAT port: PunchHoleRequest closed without answer');

# one message only: a second one in the same write is not answered

$c = RustDesk::Client->tcp(port(0));
$c->send_raw(RustDesk::Client::frame(RustDesk::Client::encode_msg(
	online_request => { id => 'asker1', peers => [ $on[0] ] }))
	. RustDesk::Client::frame(RustDesk::Client::encode_msg(
	test_nat_request => {})));
is(until_close($c), 'online_response{states=hex:80} closed',
	'NAT port: one message, then close');

# the main port: TestNatRequest gets the ConfigUpdate when it is newer

$c = RustDesk::Client->tcp(port(1));
$c->send_msg(test_nat_request => { serial => 0 });
is(until_close($c), 'test_nat_response{cu={serial=3} port='
	. $c->sockport() . '} closed', 'main port: TestNatRequest serial 0');

$c = RustDesk::Client->tcp(port(1));
$c->send_msg(test_nat_request => { serial => 3 });
is(until_close($c), 'test_nat_response{port=' . $c->sockport() . '} closed',
	'main port: TestNatRequest serial 3, no ConfigUpdate');

# PunchHoleRequest failures: answered, and the connection stays open

$c = RustDesk::Client->tcp(port(1));
$c->send_msg(punch_hole_request => { id => 'nat-unknown-1',
	licence_key => 'wrong', version => '1.2.3' });
is(next_msg($c), 'punch_hole_response{failure=3}',
	'wrong key: LICENSE_MISMATCH');

$c->send_msg(punch_hole_request => { id => $on[0], version => '1.2.3' });
is(next_msg($c), 'punch_hole_response{failure=3}',
	'no key: LICENSE_MISMATCH, on the same connection');

$c->send_msg(punch_hole_request => { id => 'nat-unknown-1',
	licence_key => $key, version => '1.2.3' });
is(next_msg($c), 'punch_hole_response{}',
	'right key, unknown id: ID_NOT_EXIST, on the same connection');

$c->send_msg(punch_hole_request => { id => 'nat-unknown-2',
	licence_key => $key . 'x' });
is(next_msg($c), 'punch_hole_response{failure=3}', 'key with a suffix refused');

$c->send_msg(punch_hole_request => { id => '', licence_key => $key });
is(next_msg($c), 'punch_hole_response{}', 'right key, empty id: ID_NOT_EXIST');

$c->send_msg(online_request => { id => 'asker1', peers => [ $on[0] ] });
is(until_close($c), 'closed', 'then OnlineRequest: closed without answer');

# two requests in one write are both answered

$c = RustDesk::Client->tcp(port(1));
$c->send_raw(join '', map { RustDesk::Client::frame(
	RustDesk::Client::encode_msg(punch_hole_request => $_)) }
	{ id => 'nat-unknown-1', licence_key => 'wrong' },
	{ id => 'nat-unknown-1', licence_key => $key });
is(next_msg($c) . ' ' . next_msg($c),
	'punch_hole_response{failure=3} punch_hole_response{}',
	'two PunchHoleRequests in one write');

# (an open connection would hold up the graceful stop below)
$c->close();

# RegisterPk over TCP: the peer registers on the connection, which stays
# open (PROTOCOL.md section 8; the reference answers NOT_SUPPORT)

$c = RustDesk::Client->tcp(port(1));
$c->send_msg(register_pk => { id => 'nat-tcp-1', uuid => 'u',
	pk => 'K' x 32 });
is(next_msg($c) . ' ' . ($c->closed(0.5) ? 'closed' : 'open'),
	'register_pk_response{keep_alive=30} open',
	'RegisterPk over TCP: OK with keep_alive, connection kept');
$c->close();

# other messages: closed without answer

is(once(port(1), online_request => { id => 'asker1', peers => [ $on[0] ] }),
	'closed', 'main port: OnlineRequest closed without answer');
is(once(port(1), register_peer => { id => $on[0] }), 'closed',
	'main port: RegisterPeer closed without answer');

# the idle timeout (rustdesk_timeout 1s on PORT_2 and PORT_3); the main
# port's default (30 s) keeps an idle connection meanwhile

my $idle_default = RustDesk::Client->tcp(port(1));
my $idle = RustDesk::Client->tcp(port(2));
my $idle_nat = RustDesk::Client->tcp(port(3));
my $half = RustDesk::Client->tcp(port(2));
$half->send_raw(RustDesk::Client::frame_header(10) . 'abc');

ok($idle->closed(3), 'main port, timeout 1s: idle connection closed');
ok($idle_nat->closed(3), 'NAT port, timeout 1s: idle connection closed');
ok($half->closed(3), 'timeout 1s: connection idle in a frame closed');

$idle_default->send_msg(test_nat_request => { serial => 3 });
is(until_close($idle_default), 'test_nat_response{port='
	. $idle_default->sockport() . '} closed',
	'default timeout: still served after the others timed out');

# rustdesk_key "": any licence key is accepted

$t->stop();

my $conf = $t->read_file('nginx.conf');
$conf =~ s/(rustdesk_serial 3;)/$1\n    rustdesk_key "";/;
$t->write_file('nginx.conf', $conf);
$t->run();

$c = RustDesk::Client->tcp(port(1));
$c->send_msg(punch_hole_request => { id => 'nat-unknown-1',
	licence_key => 'anything' });
is(next_msg($c), 'punch_hole_response{}',
	'empty key: any licence key, ID_NOT_EXIST');

$c->send_msg(punch_hole_request => { id => 'nat-unknown-1' });
is(next_msg($c), 'punch_hole_response{}',
	'empty key: no licence key, ID_NOT_EXIST');

$c->send_msg(punch_hole_request => { id => 'nat-unknown-1',
	licence_key => $key });
is(next_msg($c), 'punch_hole_response{}',
	'empty key: the public key, ID_NOT_EXIST');

$c->close();

###############################################################################
