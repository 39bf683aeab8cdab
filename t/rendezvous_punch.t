#!/usr/bin/perl

# Punching a hole through the rendezvous server (PROTOCOL.md sections 4, 5
# and 6): A asks for B over TCP (PunchHoleRequest, RequestRelay), B hears
# over UDP at its registered address (PunchHole, FetchLocalAddr,
# RequestRelay) and answers on a new TCP connection (PunchHoleSent,
# LocalAddr, RelayResponse); A gets the answer, whichever worker B's
# connection landed on.  Also: relay server rotation and health, forced
# relay (always-use-relay, LAN mask, local IP), answers nobody waits for,
# retries, reload and a worker killed with peers and requesters in flight.
#
# Addresses are compared decoded (AddrMangle carries the time), signed
# keys are verified with the server's public key.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ varint mangle msg_text msg_norm addr /;

my $t = Test::Nginx->new()->has()->plan(42)
	->allow_log(qr/exited on signal 9\b/);

start('rustdesk_relay_servers 127.0.0.1:%%PORT_2%% 127.0.0.1:%%PORT_3%%;');

my $key = $t->read_file('keys/id_ed25519.pub');
my @RELAYS = map { '127.0.0.1:' . port($_) } 2, 3;

my $A_IP = '127.0.0.2';                 # A, unless a test says otherwise
my @B_IPS = map { "127.0.0.$_" } 1, 3 .. 12;   # B: never A's IP
my %PK;                                 # id -> B's registered key
my @A_ADDRS;                            # the As of request(), in order
my $nb = 0;                             # Bs registered

###############################################################################

# 1. full flows, each with a new A, a new B (registered from a new UDP
# socket) and a new TCP connection for B's answer; about half of the
# answers come in on the other worker than A's

my $relayed0 = $t->log_count(qr/answer relayed from worker/);
my (@bad, @pairs);

for my $n (1 .. 50) {
	my $pb = peer_b($B_IPS[$n % @B_IPS]);
	my %f = punch($pb);
	push @bad, "flow $n: $f{bad}" if $f{bad};
	push @pairs, [ $f{a}, $f{bt} ];
}

is(join("\n", @bad), '', '50 punch flows: exact fields, B closed after');

my $relayed = $t->log_count(qr/answer relayed from worker/) - $relayed0;
my ($cross, $unknown) = $t->split_pairs(@pairs);

note("50 flows: $relayed answers relayed from the other worker");
ok($relayed > 0, "answers crossed workers ($relayed of 50)");
is("$relayed/$unknown", "$cross/0",
	'one "relayed" line per flow whose A and B landed on different workers');

###############################################################################

# 2. A and B at the same IP: FetchLocalAddr, answered by LocalAddr

{
	my $pb = peer_b('127.0.0.1');
	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.1');
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg();
	my $relay = relay_of($m);
	is(norm($type, $m), "fetch_local_addr{relay_server=$relay socket_addr="
		. addr($rq) . '}', 'same IP: FetchLocalAddr with A\'s address');

	my $local = mangle('192.168.1.5', 4000);
	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.1');
	$bt->send_msg(local_addr => { socket_addr => $m->{socket_addr},
		local_addr => $local, relay_server => $relay, id => $pb->{id},
		version => '1.3.0' });

	my @r = $rq->recv_msg();
	is(norm(@r), "punch_hole_response{is_local=1 pk=signed($pb->{id}) "
		. "relay_server=$relay socket_addr=192.168.1.5:4000}",
		'LocalAddr: A gets B\'s local address, is_local, signed key');
	ok(@r && $r[1]{socket_addr} eq $local, 'LocalAddr: local_addr bytes as sent');
	ok($bt->closed(), 'LocalAddr: B\'s connection closed');
}

###############################################################################

# 3. PunchHoleSent without a version: no signed key

{
	my $pb = peer_b($B_IPS[0]);
	my %f = punch($pb, version => '');
	is($f{bad}, '', 'PunchHoleSent with empty version: answer without pk');
}

###############################################################################

# 4. RequestRelay: forwarded to B with A's address, every other field
# kept, unknown ones too; B's RelayResponse reaches A without the address
# and with B's signed key in place of its id

{
	my $pb = peer_b($B_IPS[1]);
	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);

	# field 30 is in no RequestRelay the server knows of
	my $unknown = "\xf2\x01\x07future!";
	my $rr = Hbb::RequestRelay->encode({ id => $pb->{id}, uuid => 'u-1',
		relay_server => 'r:1', secure => 1, conn_type => 1, token => 'tk',
		licence_key => $key, switch_code => 'sw',
		control_permissions => { permissions => 5 } }) . $unknown;
	$rq->send_raw(RustDesk::Client::frame("\x92\x01" . varint(length $rr)
		. $rr));

	my $raw = $pb->{udp}->recv_payload();
	my ($type, $m) = defined $raw ? RustDesk::Client::decode_msg($raw) : ();

	is(norm($type, $m), "request_relay{conn_type=1 "
		. "control_permissions={permissions=5} id=$pb->{id} "
		. "licence_key=$key relay_server=r:1 secure=1 socket_addr="
		. addr($rq) . ' switch_code=sw token=tk uuid=u-1}',
		'RequestRelay to B: A\'s address, the fields kept');
	ok(defined $raw && index($raw, $unknown) >= 0,
		'RequestRelay to B: unknown field kept');

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => 'u-1', relay_server => 'r:1', id => $pb->{id},
		version => '1.3.0' });

	is(norm($rq->recv_msg()), "relay_response{pk=signed($pb->{id}) "
		. 'relay_server=r:1 uuid=u-1 version=1.3.0}',
		'RelayResponse to A: no address, pk in place of the id');
	ok($bt->closed(), 'RelayResponse: B\'s connection closed');
}

###############################################################################

# 5. two relay servers, handed out in turn by each worker

{
	my $pb = peer_b($B_IPS[2]);
	my (%seen, %last, @bad);

	for my $n (1 .. 12) {
		my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
		$rq->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1 });

		my ($type, $m) = $pb->{udp}->recv_msg();
		my $relay = ($type // '') eq 'punch_hole'
			? $m->{relay_server} // '' : 'none';
		my $w = $t->worker_of($rq);

		$seen{$relay}++;
		push @bad, "request $n on worker $w: $relay again"
			if defined $last{$w} && $last{$w} eq $relay;
		$last{$w} = $relay;
	}

	is(join(' ', sort keys %seen), join(' ', sort @RELAYS),
		'rotation: both relay servers offered');
	is(join(', ', @bad), '', 'rotation: alternate on each worker');
}

###############################################################################

# 7. answers that find nobody, requesters that leave, retries

{
	my $before = $t->log_count(qr/not waiting/);

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $B_IPS[0]);
	$bt->send_msg(punch_hole_sent => {
		socket_addr => mangle('127.0.0.99', 4321), id => 'nobody-1',
		relay_server => $RELAYS[0], nat_type => 1, version => '1.3.0' });
	ok($bt->closed(), 'answer for nobody: B\'s connection closed');
	ok($t->log_count(qr/\[info\].*not waiting/) > $before,
		'answer for nobody: "not waiting" logged');

	# A leaves before B answers, on either worker

	my @left;

	for my $n (1 .. 6) {
		my $pb = peer_b($B_IPS[$n % @B_IPS]);
		my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
		$rq->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1 });

		my ($type, $m) = $pb->{udp}->recv_msg();
		$rq->close();

		unless (($type // '') eq 'punch_hole') {
			push @left, "$n: " . norm($type, $m);
			next;
		}

		$bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
		$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
			id => $pb->{id}, relay_server => $m->{relay_server},
			nat_type => 1, version => '1.3.0' });
		push @left, "$n: B not closed" unless $bt->closed();
	}

	is(join(', ', @left), '', 'A gone before the answer: B closed');

	my %f = punch(peer_b($B_IPS[3]));
	is($f{bad}, '', 'A gone before the answer: then a full flow');

	# a retry on the same connection: B hears twice, A gets one answer

	my $pb = peer_b($B_IPS[4]);
	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	my @holes;

	for (1 .. 2) {
		$rq->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1 });
		push @holes, [ $pb->{udp}->recv_msg() ];
	}

	my $relay = relay_of($holes[1][1]);
	is(join(' ', map { norm(@$_) =~ s/relay_server=\S+ //r } @holes),
		join(' ', ('punch_hole{nat_type=1 socket_addr=' . addr($rq) . '}')
			x 2), 'retry: a second PunchHole');

	$before = $t->log_count(qr/not waiting/);

	my @bt = map { RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip}) }
		0 .. 1;

	for my $i (0 .. 1) {
		$bt[$i]->send_msg(punch_hole_sent => {
			socket_addr => $holes[$i][1]{socket_addr} // '',
			id => $pb->{id}, relay_server => $relay, nat_type => 2,
			version => '1.3.0' });
		$bt[$i]->closed();
	}

	is(norm($rq->recv_msg()), "punch_hole_response{nat_type=2 "
		. "pk=signed($pb->{id}) relay_server=$relay socket_addr="
		. addr($bt[0]) . '}', 'retry: the first answer reaches A');
	ok($t->log_count(qr/not waiting/) > $before,
		'retry: the second answer finds A not waiting');
	is(norm($rq->recv_msg(0.5)), '', 'retry: no second answer at A');
}

###############################################################################

# 8. a requester answering itself on its own connection

{
	my $pb = peer_b($B_IPS[5]);
	my $c = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);

	$c->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1 });
	my ($type, $m) = $pb->{udp}->recv_msg();
	my $relay = relay_of($m);

	$c->send_msg(punch_hole_sent => {
		socket_addr => mangle($A_IP, $c->sockport()), id => $pb->{id},
		relay_server => $relay, nat_type => 1, version => '1.3.0' });

	is(norm($c->recv_msg()), "punch_hole_response{nat_type=1 "
		. "pk=signed($pb->{id}) relay_server=$relay socket_addr="
		. addr($c) . '}', 'self-answer: the answer on the same connection');
	ok($c->closed(), 'self-answer: then closed');

	my %f = punch(peer_b($B_IPS[6]));
	is($f{bad}, '', 'self-answer: then a full flow');
}

###############################################################################

# 9. reload: peers stay online; a worker killed: its requesters are gone,
# the others go on

{
	my $pb = peer_b($B_IPS[7]);

	$t->reload();
	is($t->replaced(), '2/2', 'reload: two new workers');

	my @new = $t->worker_pids();

	my %f = punch($pb);
	is($f{bad}, '', 'reload: B registered before, punched after');

	# a requester waiting on the worker to be killed

	my $victim = $new[0];
	my ($rq, $hole);

	for (1 .. 30) {
		$rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
		$rq->send_msg(punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1 });
		my ($type, $m) = $pb->{udp}->recv_msg();
		$hole = ($type // '') eq 'punch_hole' ? $m : undef;
		last if $hole && $t->worker_of($rq) == $victim;
		$rq->close();
		undef $hole;
	}

	ok($hole, 'a requester waiting on the worker to be killed');

	my @now = $t->kill_worker($victim);

	is(scalar(grep { $_ != $victim } @now), 2, 'killed worker replaced');

	SKIP: {
		skip 'no requester on the killed worker', 3 unless $hole;

		ok($rq->closed(1), 'killed worker: its requester disconnected');

		my $gone = qr/not waiting|holding the requester is gone/;
		my $before = $t->log_count($gone);

		my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
		$bt->send_msg(punch_hole_sent => { socket_addr => $hole->{socket_addr},
			id => $pb->{id}, relay_server => $hole->{relay_server},
			nat_type => 1, version => '1.3.0' });
		ok($bt->closed(), 'answer for a requester of the killed worker: '
			. 'B closed');
		ok($t->log_count($gone) > $before,
			'answer for a requester of the killed worker: dropped, logged');
	}

	my @bad;

	for my $n (1 .. 10) {
		my %f = punch(peer_b($B_IPS[$n % @B_IPS]));
		push @bad, "flow $n: $f{bad}" if $f{bad};
	}

	is(join("\n", @bad), '', 'killed worker: 10 more full flows');
}

###############################################################################

# 6. forced relay and LAN, each with a configuration of its own

# always-use-relay: SYMMETRIC whatever A said; of two relay servers, the
# one down is no longer offered once checked (every 3 s, the first at the
# start of each worker)

start('rustdesk_always_use_relay on;
    rustdesk_relay_servers "127.0.0.1:%%PORT_2%%,127.0.0.1:%%PORT_9%%";');

{
	my $pb = peer_b('127.0.0.1');
	my @got;

	@A_ADDRS = ();

	for my $nat (0 .. 2, 1) {
		my ($type, $m) = request($pb, $A_IP, $nat);
		push @got, norm($type, $m) =~ s/relay_server=\S+ //r;
	}

	is(join(' ', @got), join(' ', map { "punch_hole{nat_type=2 "
		. "socket_addr=$_}" } @A_ADDRS),
		'always use relay: PunchHole SYMMETRIC whatever A sent');

	# until each worker has found it down
	my $down = port(9);
	wait_until(sub {
		my ($log, %w) = $t->read_file('error.log');
		$w{$1} = 1 while $log =~ /(\d+)\#\d+:\ .*(?:
			relay\ server\ "127\.0\.0\.1:$down"\ is\ down
			|connect\(\)\ to\ 127\.0\.0\.1:$down\ failed)/gx;
		return (grep { $w{$_} } $t->worker_pids()) == 2;
	}, 10);

	my %seen;

	for (1 .. 6) {
		my ($type, $m) = request($pb, $A_IP, 1);
		$seen{relay_of($m)}++;
	}

	is(join(' ', sort keys %seen), $RELAYS[0],
		'relay servers: the one that fails the health check not offered');
}

# LAN mask 127.0.0.2/32: one side inside forces the relay; a LAN-side B
# gets the local IP as relay; RelayResponse rewritten as the reference

start('rustdesk_relay_servers 127.0.0.1:%%PORT_2%%;
    rustdesk_lan_mask 127.0.0.2/32;
    rustdesk_local_ip 10.9.9.9;');

{
	my $pb = peer_b('127.0.0.1');
	my $lan_b = peer_b('127.0.0.2');

	is(norm(request($pb, '127.0.0.2', 1)), "punch_hole{nat_type=2 "
		. "relay_server=$RELAYS[0] socket_addr=$A_ADDRS[-1]}",
		'LAN mask: A inside, B outside: SYMMETRIC');
	is(norm(request($lan_b, '127.0.0.3', 1)), "punch_hole{nat_type=2 "
		. "relay_server=10.9.9.9 socket_addr=$A_ADDRS[-1]}",
		'LAN mask: B inside: SYMMETRIC, the local IP as relay');
	is(norm(request($pb, '127.0.0.3', 1)), "punch_hole{nat_type=1 "
		. "relay_server=$RELAYS[0] socket_addr=$A_ADDRS[-1]}",
		'LAN mask: both outside: nat_type kept');

	is(relay_answer($pb, '127.0.0.2', 'r:1'), '10.9.9.9',
		'LAN mask: RelayResponse to a LAN-side A: the local IP');
	is(relay_answer($pb, '127.0.0.3', '10.9.9.9'), $RELAYS[0],
		'LAN mask: RelayResponse with the local IP to an outside A: '
		. 'a relay server');
	is(relay_answer($pb, '127.0.0.3', 'r:1'), 'r:1',
		'LAN mask: RelayResponse to an outside A: kept');
}

# LAN mask 127.0.0.0/8: A and B both inside: FetchLocalAddr

start('rustdesk_relay_servers 127.0.0.1:%%PORT_2%%;
    rustdesk_lan_mask 127.0.0.0/8;
    rustdesk_local_ip 10.1.1.1;');

{
	my $pb = peer_b('127.0.0.1');

	is(norm(request($pb, '127.0.0.2', 1)), "fetch_local_addr{"
		. "relay_server=$RELAYS[0] socket_addr=$A_ADDRS[-1]}",
		'LAN mask: A and B inside, other IPs: FetchLocalAddr');
}

###############################################################################

# (Re)starts nginx with the configuration's punch directives.

sub start {
	my ($punch) = @_;

	$t->restart(stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;', $punch ],
		srv_rendezvous(1),

		# the relay servers offered: listening, so that a health check
		# passes
		srv_block([ '127.0.0.1:%%PORT_2%%', '127.0.0.1:%%PORT_3%%' ],
			'rustdesk_nat_test;')));
}

# A new peer B registered over UDP from a new socket at $ip: RegisterPk,
# then RegisterPeer from the same socket.  Dies if either is refused.

sub peer_b {
	my ($ip) = @_;
	return RustDesk::Client->udp_peer(port(1), sprintf('punch-b-%03d', ++$nb),
		LocalAddr => $ip, keys => \%PK);
}

# A full punch: A (new TCP connection from $A_IP) asks for B; B checks
# its PunchHole and answers with PunchHoleSent on a new TCP connection
# from its IP; A checks the PunchHoleResponse, B's connection must close.
# Returns (bad => what differed from the spec, a => A's address, bt =>
# the address of B's answering connection).

sub punch {
	my ($pb, %o) = @_;
	my $version = $o{version} // '1.3.0';
	my @bad;

	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg();
	my $relay = relay_of($m);
	my $got = norm($type, $m);
	my $exp = "punch_hole{nat_type=1 relay_server=$relay socket_addr="
		. addr($rq) . '}';

	return (bad => "PunchHole: $got, expected $exp", a => addr($rq), bt => '')
		if $got ne $exp || !grep { $_ eq $relay } @RELAYS;

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $pb->{id}, relay_server => $relay, nat_type => 2,
		version => $version });

	$got = norm($rq->recv_msg());
	$exp = 'punch_hole_response{nat_type=2 '
		. ($version ne '' ? "pk=signed($pb->{id}) " : '')
		. "relay_server=$relay socket_addr=" . addr($bt) . '}';

	push @bad, "PunchHoleResponse: $got, expected $exp" if $got ne $exp;
	push @bad, 'B not closed' unless $bt->closed();

	my %r = (bad => join('; ', @bad), a => addr($rq), bt => addr($bt));
	$rq->close();

	return %r;
}

# A PunchHoleRequest from a new connection at $ip: what B heard (A's
# address is pushed on @A_ADDRS).

sub request {
	my ($pb, $ip, $nat) = @_;

	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $ip);
	$rq->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => $nat });

	push @A_ADDRS, addr($rq);
	my @m = $pb->{udp}->recv_msg();
	$rq->close();

	return @m;
}

# The relay server A gets in a RelayResponse that said $relay.

sub relay_answer {
	my ($pb, $ip, $relay) = @_;

	my $rq = RustDesk::Client->tcp(port(1), LocalAddr => $ip);
	$rq->send_msg(request_relay => { id => $pb->{id}, uuid => 'u-2',
		relay_server => $relay });

	my ($type, $m) = $pb->{udp}->recv_msg();
	return 'RequestRelay: ' . norm($type, $m)
		unless ($type // '') eq 'request_relay';

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => 'u-2', relay_server => $relay, id => $pb->{id},
		version => '1.3.0' });

	($type, $m) = $rq->recv_msg();
	return 'RelayResponse: ' . norm($type, $m)
		unless ($type // '') eq 'relay_response';

	return $m->{relay_server} // '';
}

sub relay_of {
	my ($m) = @_;
	return ref $m ? $m->{relay_server} // '' : 'none';
}

# (type, fields) as text (RustDesk::Client::msg_norm): addresses decoded,
# signed keys checked against the keys the Bs registered.

sub norm { msg_norm($key, \%PK, @_) }

###############################################################################
