#!/usr/bin/perl

# UDP on the rendezvous port (PROTOCOL.md section 6): RegisterPeer and
# RegisterPk with their checks and rate limits, the IP blocker,
# ConfigUpdate and SoftwareUpdate, the messages ignored over UDP, and the
# peer table shared by both workers.
#
# "No answer" is told without waiting out a timeout: a probe follows the
# message on the same socket (a RegisterPk with a 5-character id, always
# answered UUID_MISMATCH and changing nothing), and one worker handles a
# socket's datagrams in order, so what came before the probe's answer is
# all that the message got.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port host_address /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text msg_fields /;
use RustDesk::RelayTest ();

my $t = Test::Nginx->new()->has()->plan(64);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_serial 5;',
	'rustdesk_rendezvous_servers a.example:21116 b.example;',
	'rustdesk_software_url https://example.com/rustdesk-1.2.3.exe;',
], srv_rendezvous(1, reuseport => 0), srv_nat_test(0), srv_console(2)));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');
my $BIG = 0x7FFFFFFF;                    # a client serial above any server's

my $UUID = 'uuid-0123456789abcdef';
my $PK1 = 'A' x 32;
my $PK2 = 'B' x 32;

# A non-loopback address of this host, to send from (the IP-change and
# loopback-only checks need one).

my $ext = host_address();

###############################################################################

# (type, fields) as text, the fields sorted, defaults left out (proto3
# omits them on the wire: absent and 0/false/empty are the same)



sub udp {
	my ($src) = @_;
	return RustDesk::Client->udp(port(1), $src ? (LocalAddr => $src) : ());
}

# What a message got over UDP: its answers as text, space-separated.

sub ask {
	my ($c, $type, $fields) = @_;
	my @got;

	$c->send_msg($type, $fields);
	$c->send_msg(register_pk => { id => 'probe', uuid => 'p', pk => 'p' });

	for (;;) {
		my ($rt, $m) = $c->recv_msg();
		return join(' ', @got, 'timeout') unless defined $rt;
		last if $rt eq 'register_pk_response' && ($m->{result} // 0) == 2;
		push @got, msg_text($rt, $m);
	}

	return join(' ', @got);
}

# The result of a RegisterPk (always answered): a number, or what came.

sub reg_pk {
	my ($c, $id, $uuid, $pk) = @_;

	$c->send_msg(register_pk => { id => $id, uuid => $uuid, pk => $pk });

	my ($rt, $m) = $c->recv_msg();
	return 'timeout' unless defined $rt;
	return msg_text($rt, $m) unless $rt eq 'register_pk_response';
	return $m->{result} // 0;
}

###############################################################################

my $c = udp();

# RegisterPeer

is(ask($c, register_peer => { id => 'reg-unknown', serial => $BIG }),
	'register_peer_response{request_pk=1}', 'RegisterPeer unknown id');
is(ask($c, register_peer => { id => '', serial => $BIG }), '',
	'RegisterPeer empty id: no answer');

# RegisterPk: what is ignored or refused before the table

is(ask($c, register_pk => { id => 'reg-a-1', uuid => '', pk => $PK1 }), '',
	'RegisterPk empty uuid: no answer');
is(ask($c, register_pk => { id => 'reg-a-1', uuid => $UUID, pk => '' }), '',
	'RegisterPk empty pk: no answer');
is(ask($c, register_peer => { id => 'reg-a-1', serial => $BIG }),
	'register_peer_response{request_pk=1}', 'ignored RegisterPk stored nothing');

is(reg_pk($c, 'abcde', $UUID, $PK1), 2, 'id of 5: UUID_MISMATCH');
is(reg_pk($c, 'x' x 101, $UUID, $PK1), 5, 'id of 101: INVALID_ID_FORMAT');
is(reg_pk($c, 'abcdef', $UUID, $PK1), 0, 'id of 6: OK');
is(reg_pk($c, 'y' x 100, $UUID, $PK1), 0, 'id of 100: OK');

# a new peer, then the same one

is(reg_pk($c, 'reg-a-1', $UUID, $PK1), 0, 'RegisterPk new id: OK');
is(ask($c, register_peer => { id => 'reg-a-1', serial => $BIG }),
	'register_peer_response{}', 'RegisterPeer after RegisterPk: no pk asked');
is(reg_pk($c, 'reg-a-1', 'other-uuid', $PK1), 2,
	'RegisterPk other uuid: UUID_MISMATCH');
is(reg_pk(udp('127.0.0.2'), 'reg-a-1', $UUID, $PK2), 2,
	'RegisterPk same uuid, other IP and pk: UUID_MISMATCH');
is(reg_pk($c, 'reg-a-1', $UUID, $PK2), 0,
	'RegisterPk same uuid and IP, new pk: OK');
is(ask($c, register_peer => { id => 'reg-a-1', serial => $BIG }),
	'register_peer_response{}', 'RegisterPeer after pk update: no pk asked');

# at most 3 RegisterPk for an id within 6 s (the 2 OKs above count)

is(reg_pk($c, 'reg-a-1', $UUID, $PK2), 0, 'third RegisterPk in 6 s: OK');
my $third = time();
is(reg_pk($c, 'reg-a-1', $UUID, $PK2), 4, 'fourth in 6 s: TOO_FREQUENT');
is(reg_pk(udp(), 'reg-a-1', $UUID, $PK2), 4, 'fourth from another socket');

# a sleep: the 6 s of the window passing, counted from the last RegisterPk
# that was (the third OK), and a little more
my $left = $third + 6.2 - time();
sleep $left if $left > 0;

is(join(' ', map { reg_pk($c, 'reg-a-1', $UUID, $PK2) } 1 .. 4), '0 0 0 4',
	'after 6 s: three OK again, then TOO_FREQUENT');

# the IP change: a peer registered from loopback, then heard from another
# address of this host, is asked for its key; loopback is never a change

SKIP: {
	skip 'no non-loopback address', 5 unless $ext;

	my $e = udp($ext);

	is(reg_pk($c, 'reg-b-1', $UUID, $PK1), 0, 'ip change: registered');
	is(ask($e, register_peer => { id => 'reg-b-1', serial => $BIG }),
		'register_peer_response{request_pk=1}', 'ip change: pk asked');
	is(ask($c, register_peer => { id => 'reg-b-1', serial => $BIG }),
		'register_peer_response{}', 'back on loopback: no pk asked');
	is(reg_pk($e, 'reg-b-1', $UUID, $PK1), 0,
		'ip change: same uuid and pk from the new IP: OK');
	is(ask($e, register_peer => { id => 'reg-b-1', serial => $BIG }),
		'register_peer_response{}', 'new IP registered: no pk asked');
}

# the IP blocker: the first RegisterPk from an address is not counted, then
# more than 30 counted within 60 s are refused: the 33rd is the first

my $b = udp('127.0.0.3');
my $r = join('', map { my $x = reg_pk($b, sprintf('blk-%03d', $_), $UUID,
	$PK1); $x eq '0' ? '.' : $x eq '4' ? 'F' : "[$x]" } 1 .. 36);

is($r, '.' x 32 . 'F' x 4, 'IP blocker: 32 OK, refused from the 33rd');
is(reg_pk($b, 'blk-001', $UUID, $PK1), 4, 'IP blocker: known id refused too');
is(reg_pk(udp('127.0.0.3'), 'blk-100', $UUID, $PK1), 4,
	'IP blocker: per IP, not per socket');
is(ask($b, register_peer => { id => 'blk-001', serial => $BIG }),
	'register_peer_response{}', 'IP blocker: RegisterPeer still answered');
is(reg_pk(udp('127.0.0.2'), 'blk-200', $UUID, $PK1), 0,
	'IP blocker: another IP not affected');
is(reg_pk($c, 'blk-201', $UUID, $PK1), 0, 'IP blocker: loopback not affected');

# ConfigUpdate with RegisterPeer when the server's serial is higher, only
# to a peer with a key, from its registered IP: to anyone else, nothing
# larger than what came (PROTOCOL.md section 6)

is(ask($c, register_peer => { id => 'cfg-1', serial => 0 }),
	'register_peer_response{request_pk=1}',
	'RegisterPeer serial 0, unknown peer: no ConfigUpdate');
is(ask($c, register_peer => { id => 'reg-a-1' }),
	'register_peer_response{} '
	. 'configure_update{rendezvous_servers=a.example:21116,b.example serial=5}',
	'RegisterPeer no serial, known peer: ConfigUpdate');
is(reg_pk($c, 'cfg-ok1', $UUID, $PK1), 0, 'a peer with a key');
is(ask($c, register_peer => { id => 'cfg-ok1', serial => 4 }),
	'register_peer_response{} '
	. 'configure_update{rendezvous_servers=a.example:21116,b.example serial=5}',
	'RegisterPeer serial 4: ConfigUpdate');
is(ask($c, register_peer => { id => 'cfg-ok1', serial => 5 }),
	'register_peer_response{}', 'RegisterPeer serial 5: none');

SKIP: {
	skip 'no non-loopback address', 2 unless $ext;

	my $e = udp($ext);

	is(ask($e, configure_update => { serial => 100,
		rendezvous_servers => [ 'evil.example' ] }), '',
		'ConfigUpdate not from loopback: no answer');
	is(ask($c, register_peer => { id => 'cfg-ok1', serial => 5 }),
		'register_peer_response{}',
		'ConfigUpdate not from loopback: not adopted');
}

# a ConfigUpdate datagram, even from loopback, changes nothing (any local
# process could send one); the console does it

is(ask($c, configure_update => { serial => 7,
	rendezvous_servers => [ 'c.example' ] }), '',
	'ConfigUpdate from loopback: no answer');
is(ask($c, register_peer => { id => 'cfg-ok1', serial => 5 }),
	'register_peer_response{}', 'ConfigUpdate from loopback: not adopted');
ok($t->wait_log(qr/ConfigUpdate datagram ignored/, 1, 2),
	'... and logged');

is(RustDesk::RelayTest::console(port(2), 'cu 7 c.example'), '',
	'the console raises the serial');
is(RustDesk::RelayTest::console(port(2), 'cu'),
	"serial: 7\nrendezvous-servers: c.example\n",
	'the console shows it');

# adopted in the zone: both workers answer with it (the peer with a key,
# from new sockets of its IP)

sub config_everywhere {
	my ($expect) = @_;
	my (%workers, @bad);

	for my $n (1 .. 64) {
		my $s = udp();
		my $got = ask($s, register_peer => { id => 'cfg-ok1', serial => 5 });
		push @bad, $got if $got ne $expect;
		$workers{$t->worker_of($s)}++;
		last if $n >= 8 && keys %workers >= 2;
	}

	return (join(' | ', @bad), scalar grep { $_ } keys %workers);
}

my $cu7 = 'register_peer_response{} '
	. 'configure_update{rendezvous_servers=c.example serial=7}';

my ($bad, $nworkers) = config_everywhere($cu7);
is($bad, '', 'ConfigUpdate serial 7 adopted, from every socket');
is($nworkers, 2, 'ConfigUpdate adopted: answered by both workers');

is(RustDesk::RelayTest::console(port(2), 'cu 6 d.example'),
	"serial 6 is not above the current one\n", 'lower serial: refused');
is(RustDesk::RelayTest::console(port(2), 'cu 7 e.example'),
	"serial 7 is not above the current one\n", 'same serial: refused');

($bad, $nworkers) = config_everywhere($cu7);
is($bad, '', 'lower and same serial not adopted, from every socket');
is($nworkers, 2, 'lower serial not adopted: answered by both workers');

is(ask($c, register_peer => { id => 'cfg-ok1', serial => 7 }),
	'register_peer_response{}', 'RegisterPeer serial 7: none');

# SoftwareUpdate: the version in the URL is 1.2.3; the answer, larger
# than the request, goes only to a request at least as large (a datagram
# proves nothing of its source)

is(ask($c, software_update => { url => '1.2.2' }), '',
	'SoftwareUpdate older version, short request: no answer');
is(ask($c, software_update => { url => '1.2.2' . ' ' x 40 }),
	'software_update{url=https://example.com/rustdesk-1.2.3.exe}',
	'SoftwareUpdate older version, as large as the answer: the URL');
is(ask($c, software_update => { url => '1.2.3' }), '',
	'SoftwareUpdate same version: no answer');

# never answered over UDP (reflection): neither the sender nor the
# registered peer they name (reg-a-1, registered from $c) hears anything

my $d = udp();
my $amangled = RustDesk::Client::mangle('127.0.0.1', $d->sockport());

is(ask($d, punch_hole_request => { id => 'reg-a-1', licence_key => $key,
	nat_type => 1, version => '1.2.3' }), '',
	'PunchHoleRequest over UDP: no answer');
is(ask($d, punch_hole_sent => { socket_addr => $amangled, id => 'reg-a-1',
	relay_server => 'relay.example', version => '1.2.3' }), '',
	'PunchHoleSent over UDP: no answer');
is(ask($d, local_addr => { socket_addr => $amangled,
	local_addr => $amangled, id => 'reg-a-1', version => '1.2.3' }), '',
	'LocalAddr over UDP: no answer');
is(ask($c, software_update => { url => '1.2.3' }), '',
	'nothing sent to the registered peer either');

# the peer table is shared: registered over UDP by one worker, seen online
# on the NAT-test port by both

is(reg_pk(udp(), 'share-1', $UUID, $PK1), 0, 'shared: registered');

my (%workers, @states);

for my $n (1 .. 64) {
	my $s = RustDesk::Client->tcp(port(0));
	$s->send_msg(online_request => { id => 'asker', peers => [ 'share-1' ] });
	my ($rt, $m) = $s->recv_msg();
	push @states, defined $rt && $rt eq 'online_response'
		? unpack('H*', $m->{states} // '') : 'none';
	$workers{$t->worker_of($s)}++;
	last if $n >= 8 && keys %workers >= 2;
}

is(join(' ', grep { $_ ne '80' } @states), '', 'shared: online everywhere');
is(scalar grep({ $_ } keys %workers), 2, 'shared: asked of both workers');

# no software URL, no serial: no SoftwareUpdate, no ConfigUpdate

$t->stop();

my $conf = $t->read_file('nginx.conf');
$conf =~ s/^\s*rustdesk_(serial|rendezvous_servers|software_url) .*\n//mg;
$t->write_file('nginx.conf', $conf);
$t->run();

$c = udp();

is(ask($c, software_update => { url => '1.2.2' }), '',
	'no software URL: SoftwareUpdate not answered');
is(ask($c, register_peer => { id => 'cfg-1', serial => 0 }),
	'register_peer_response{request_pk=1}',
	'serial 0 configured: no ConfigUpdate');
is(RustDesk::RelayTest::console(port(2), 'cu 2 f.example g.example'), '',
	'ConfigUpdate after restart: from the console');
is(reg_pk($c, 'cfg-ok2', $UUID, $PK1), 0, 'a peer with a key');
is(ask($c, register_peer => { id => 'cfg-ok2', serial => 1 }),
	'register_peer_response{} '
	. 'configure_update{rendezvous_servers=f.example,g.example serial=2}',
	'ConfigUpdate after restart adopted');

###############################################################################
