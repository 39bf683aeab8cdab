#!/usr/bin/perl

# Registration over TCP and WebSocket (PROTOCOL.md sections 2, 6 and 8):
# a peer B sends RegisterPk on a stream (plain TCP, secure TCP with the
# key exchange done, a WebSocket binary message; also over [::1]) and
# keeps it: RegisterPkResponse{result, keep_alive} on it, the peer online
# while it lives, PunchHole / FetchLocalAddr / RequestRelay from
# requesters over TCP and WebSocket delivered as one frame on it (secure:
# sealed with the next nonce), whichever worker holds A and B; B answers
# on a new connection as usual.  Heartbeats (empty frames) answered,
# the server's ping after keep_alive of silence, its echo not answered, a
# silent client closed; RegisterPk's rules over a stream; a newer stream
# taking over; a closed stream's 30 s of grace (OFFLINE at once for a
# requester); bad input on a bound stream; clients gone while their
# database write is pending; a worker killed with streams bound; a
# reload closing them.
#
# Addresses are compared decoded (AddrMangle carries the time), signed
# keys are verified with the server's public key, the key exchange and the
# secretboxes with the real libsodium (RustDesk::Sodium).

use warnings;
use strict;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw/ decode_base64 /;
use Socket qw/ SOL_SOCKET SO_LINGER /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_value /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame frame_header encode_msg decode_msg mangle
	msg_text msg_norm addr /;
use RustDesk::WebSocket;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;
use RustDesk::Sodium qw/ sign_open box_keypair box_easy secretbox_easy
	secretbox_open_easy random seq_nonce /;

local $SIG{PIPE} = 'IGNORE';

plan(skip_all => "libsodium through FFI::Platypus: $@")
	unless RustDesk::Sodium::available();

my $t = Test::Nginx->new()->has();

plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(62)->allow_log(qr/exited on signal 9\b/);

# port 1: the main port (TCP and UDP, 127.0.0.1 and ::1); 2: NAT test
# (online query); 3: WebSocket; 4: the relay server offered

my $KA = 2;                             # rustdesk_keep_alive, seconds
my $ONLINE = 12;                        # rustdesk_online_timeout, seconds

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_database %%TESTDIR%%/db/peers.sqlite3;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_4%%;',
	"rustdesk_keep_alive ${KA}s;",
	"rustdesk_online_timeout ${ONLINE}s;",
], srv_rendezvous(1, ipv6 => 1), srv_nat_test(2), srv_ws_rendezvous(3),
	srv_blank(4)));

my $d = $t->testdir();
mkdir "$d/db" or die "mkdir $d/db: $!\n";

$t->run();

my $key = $t->key();
my $SIGN_PK = decode_base64($key);
my $RELAY = '127.0.0.1:' . port(4);
my $DB = "$d/db/peers.sqlite3";

my $OK = "register_pk_response{keep_alive=$KA}";
my $MISMATCH = "register_pk_response{keep_alive=$KA result=2}";

my $A_IP = '127.0.0.2';                 # requesters, unless at B's IP
my %PK;                                 # id -> B's registered key
my $nb = 0;                             # ids made
my $nip = 0;                            # B addresses used

my @workers = $t->worker_pids();

###############################################################################

# an unbound stream (a requester that keeps its connection): not pinged,
# not closed after keep_alive (checked in 7)

my $U = stream('tcp', $A_IP);
$U->{c}->send_msg(punch_hole_request => { id => 'st-nobody-0',
	licence_key => $key });
my ($U_first) = s_recv($U, 3);

###############################################################################

# 1. a peer registered over plain TCP: OK with keep_alive, online on both
# ports that answer the query; PunchHole on its stream, nothing over UDP

{
	my $b = new_b('tcp');
	is($b->{reg}, $OK, 'TCP: RegisterPk answered on the stream: OK, '
		. "keep_alive $KA");
	is(online($b->{id}, 'st-nobody-1'), '10', 'TCP: peer online (NAT port)');
	is(online_ws('st-nobody-2', $b->{id}), '01',
		'TCP: peer online (WebSocket port)');

	# a UDP socket at the address of B's stream: a PunchHole sent there
	# over UDP instead of on the stream would land in it
	my $u = IO::Socket::INET->new(LocalAddr => $b->{ip},
		LocalPort => $b->{c}->sockport(), Proto => 'udp');

	my %f = punch($b, tcp => $A_IP);
	is($f{bad}, '', 'TCP: PunchHole on B\'s stream, B answers on a new '
		. 'connection, A gets PunchHoleResponse');
	ok($u && !IO::Select->new($u)->can_read(0.3),
		'TCP: nothing for B over UDP');

	s_close($b);
}

###############################################################################

# 2. a stream that closes: OFFLINE at once for a requester, but online for
# the query during rustdesk_online_timeout (checked again at the end, after
# it)

my ($grace_id, $grace_closed);

{
	my $b = new_b('tcp');
	$grace_id = $b->{id};
	s_close($b);
	$grace_closed = time();
	$t->wait_log(qr/stream of peer "\Q$grace_id\E" closed/, 1, 3);

	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	my $t0 = time();
	$a->send_msg(punch_hole_request => { id => $grace_id,
		licence_key => $key, nat_type => 1, version => '1.3.0' });
	my $got = norm($a->recv_msg(3));
	my $took = time() - $t0;

	is($got, 'punch_hole_response{failure=2}',
		'stream closed: PunchHoleRequest answered OFFLINE');
	ok($got ne '' && $took < 1, sprintf('stream closed: OFFLINE at once '
		. '(%.2f s)', $took));
	is(online($grace_id), '1', 'stream closed: still online for the query '
		. "(${ONLINE} s of grace)");
}

###############################################################################

# 3. secure TCP: the offer verified with the server key, RegisterPk
# sealed, the answer and the PunchHole sealed with the server's nonces 1
# and 2, heartbeats plain both ways and outside the counters

{
	my $s = stream('secure', next_ip());
	is($s->{offer}, 'verified', 'secure: KeyExchange offer signed by the '
		. 'server key, a 32-byte box key');

	my $id = new_id('secure');
	my $pk = random(32);
	s_send($s, register_pk => { id => $id, uuid => "uuid-$id", pk => $pk });
	my ($nonces, $got) = sealed($s);
	is("$nonces $got", "1 $OK", 'secure: RegisterPkResponse opens with '
		. 'nonce 1 only (of 0..5): OK');
	$PK{$id} = $pk;
	@$s{qw/ id uuid pk /} = ($id, "uuid-$id", $pk);

	$s->{c}->send_heartbeat();
	my ($what, $p) = $s->{c}->next_payload(1.5);
	is($what . ' ' . (defined $p ? unpack('H*', frame($p)) : ''),
		'payload 00', 'secure: an empty frame (0x00) answered by 0x00');

	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$a->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1, version => '1.3.0' });
	($nonces, $got) = sealed($s);
	is("$nonces $got", "2 punch_hole{nat_type=1 relay_server=$RELAY "
		. 'socket_addr=' . addr($a) . '}', 'secure: PunchHole on the stream '
		. 'opens with nonce 2 only: A\'s address');

	# the client's second message is its nonce 2, after a heartbeat
	$s->{c}->send_heartbeat();
	s_send($s, register_pk => { id => $id, uuid => "uuid-$id", pk => $pk });
	($what, $p) = $s->{c}->next_payload(2);
	($nonces, $got) = sealed($s);
	is("$what:" . unpack('H*', $p // '') . " $nonces $got", "payload: 3 $OK",
		'secure: heartbeat answered, then RegisterPk (client nonce 2) '
		. 'answered with nonce 3');

	s_close($s);
	close $a->sock();
}

###############################################################################

# 4. punch and relay flows for Bs registered over plain TCP, WebSocket
# and secure TCP: requesters over TCP and WebSocket, at another IP and at
# B's (FetchLocalAddr for TCP only); more Bs until some requesters were on
# B's worker and some on the other

for my $kind (qw/ tcp ws secure /) {
	my (@bad, $flows, $same, $cross);

	for my $n (1 .. 10) {
		my $b = new_b($kind);
		unless ($b->{ok}) {
			push @bad, "B $n: RegisterPk: $b->{reg}";
			last;
		}

		for my $case ([ punch => tcp => $A_IP ], [ punch => ws => $A_IP ],
			[ punch => tcp => $b->{ip} ], [ punch => ws => $b->{ip} ],
			[ relay => tcp => $A_IP ], [ relay => ws => $A_IP ])
		{
			my ($what, $ak, $ip) = @$case;
			my %f = $what eq 'punch' ? punch($b, $ak => $ip)
				: relay($b, $ak => $ip, "u-$kind-$n-$ak");

			$flows++;
			push @bad, "B $n ($b->{id}), $what from A over $ak"
				. ($ip eq $b->{ip} ? ' at B\'s IP' : '') . ": $f{bad}"
				if $f{bad};

			my ($wa, $wb) = @{$f{pair} // []};
			$wa == $wb ? $same++ : $cross++ if $wa && $wb;
			last if @bad;
		}

		s_close($b);
		last if @bad || $n >= 2 && $same && $cross;
	}

	is(join("\n", @bad), '', "$kind B: punch (PunchHole, FetchLocalAddr) "
		. "and relay flows from TCP and WebSocket requesters ($flows)");
	ok($same && $cross, "$kind B: requesters on B's worker (" . ($same // 0)
		. ') and on the other (' . ($cross // 0) . ')');
}

###############################################################################

# 5. RegisterPk's rules over a stream; the stream stays open whatever the
# result

{
	my $s = stream('tcp', next_ip());
	my $id = new_id('rules');
	my $pk = random(32);

	is(s_register($s, 'st-sh', 'uuid-short', random(32)), $MISMATCH,
		'short id: UUID_MISMATCH');
	is(s_register($s, $id, "uuid-$id", $pk), $OK,
		'then a valid RegisterPk on that stream: OK');
	$PK{$id} = $pk;
	@$s{qw/ id uuid pk /} = ($id, "uuid-$id", $pk);

	my $w = stream('ws', next_ip());
	is(s_register($w, $id, 'uuid-other', $pk), $MISMATCH,
		'registered id, another uuid (another stream): UUID_MISMATCH');
	is(hb_answer($w), 'empty', 'after UUID_MISMATCH: the stream stays open, '
		. 'its heartbeat answered');

	my %f = punch($s, ws => $A_IP);
	is($f{bad} . ' / refused stream heard: ' . (s_peek($w) || 'nothing'),
		' / refused stream heard: nothing',
		'deliveries still go to the stream that registered, not to the '
		. 'refused one');

	# without pk, without uuid: ignored, nothing sent back (the heartbeat's
	# answer comes first)

	my $n = stream('tcp', next_ip());
	my $nid = new_id('rules');
	s_send($n, register_pk => { id => $nid, uuid => "uuid-$nid" });
	s_send($n, register_pk => { id => $nid, pk => random(32) });
	is(hb_answer($n), 'empty', 'RegisterPk without pk, without uuid: '
		. 'no answer');
	is(online($nid), '0', 'RegisterPk without pk, without uuid: not '
		. 'registered');

	# a fourth RegisterPk for an id within 6 s: TOO_FREQUENT, stream open

	my $f = stream('ws', next_ip());
	my $fid = new_id('rules');
	my $fpk = random(32);
	my @r = map { (s_register($f, $fid, "uuid-$fid", $fpk)
		=~ /^register_pk_response\{keep_alive=$KA(?: result=(\d+))?\}$/)
		? $1 // 0 : 'other' } 1 .. 4;
	is(join(' ', @r, hb_answer($f)), '0 0 0 4 empty', 'four RegisterPk for '
		. 'an id in 6 s: OK three times, then TOO_FREQUENT; stream open');

	s_close($_) for $s, $w, $n, $f;
}

###############################################################################

# 6. takeover: the same id registered on a new stream gets the deliveries;
# the old stream is closed when it sends a frame, or when its ping is due
# (checked in 7)

{
	my $y1 = new_b('ws');
	my $y2 = new_b('tcp', id => $y1->{id}, uuid => $y1->{uuid},
		pk => $y1->{pk});
	my %f = relay($y2, ws => $A_IP, 'u-takeover');
	is(($y2->{ok} ? '' : "RegisterPk: $y2->{reg}; ") . $f{bad}, '',
		'takeover over WebSocket: RequestRelay goes to the new stream');

	$y1->{c}->send_heartbeat();
	my $t0 = time();
	my $closed = s_closed($y1, 2);
	my $took = time() - $t0;
	is(($closed ? $took < 1 ? 'closed' : sprintf('closed after %.1f s',
		$took) : 'open') . ', heard: ' . join(',', @{$y1->{seen} // []}),
		'closed, heard: ', 'takeover: the old stream closed at its next '
		. 'frame (at once), nothing delivered to it');

	s_close($y2);
}

my $X1 = new_b('tcp');
my $X2 = new_b('secure', id => $X1->{id}, uuid => $X1->{uuid},
	pk => $X1->{pk});

{
	is($X2->{reg}, $OK, 'takeover: the id registered again on a new '
		. 'stream (another IP, same uuid and key): OK');

	my %f = punch($X2, tcp => $A_IP);
	is($f{bad}, '', 'takeover: PunchHole goes to the new stream');
}

###############################################################################

# 7. heartbeats from the client answered with an empty frame, on unbound
# streams (plain TCP after a request, secure TCP after the handshake,
# WebSocket) and on bound ones; pings: the server sends an empty frame
# after keep_alive seconds with nothing received; an echo is not answered,
# and the next ping comes keep_alive after it; a client that never echoes
# is closed after another keep_alive; the old stream of the takeover is
# closed by then too

{
	my $c = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$c->send_msg(punch_hole_request => { id => 'st-nobody-3',
		licence_key => $key });
	my $first = norm($c->recv_msg());
	$c->send_heartbeat();
	my ($what, $p) = $c->next_payload(1.5);
	my $got = "$first $what" . (($what eq 'payload') ? ':' . unpack('H*', $p)
		: '');

	my @un = (stream('secure', next_ip()), stream('ws', next_ip()));
	$got .= ', ' . join(', ', map { hb_answer($_) } @un);

	is($got, 'punch_hole_response{} payload:, empty, empty', 'unbound '
		. 'streams (plain TCP, secure TCP, WebSocket): heartbeat answered');

	s_close($_) for @un;
	close $c->sock();
}

my $SILENT = qr/\[info\].*(?:keep.?alive|heartbeat|ping|timed out)/i;

{
	my @P = map { new_b($_) } qw/ tcp secure ws /;

	is(join(', ', map { "$_->{kind}: " . ($_->{ok} ? hb_answer($_)
		: $_->{reg}) } @P), 'tcp: empty, secure: empty, ws: empty',
		'bound streams: heartbeat answered (TCP, secure TCP, WebSocket)');

	my @N = map { new_b($_) } qw/ tcp ws /;
	my $log0 = $t->log_count($SILENT);

	$_->{echo} = 1 for @P, $X2;
	$_->{t_sent0} = $_->{t_sent} for @P, @N, $X1, $X2;

	watch(4 * $KA + 2, sub {
		!grep({ !$_->{gone} } @N, $X1)
			&& !grep { pings($_) < 2 } @P
	}, @P, @N, $X1, $X2);

	my @bad;

	for my $s (@P) {
		my @e = @{$s->{events}};
		my $last = $s->{t_sent0};
		my $pings = 0;

		for my $e (@e) {
			my ($at, $what) = @$e;

			if ($what eq 'empty') {
				my $gap = $at - $last;
				push @bad, sprintf('%s: ping %.1f s after the last frame '
					. 'it sent', $s->{kind}, $gap)
					if $gap < $KA - 0.3 || $gap > $KA + 1.5;
				$pings++;
			} elsif ($what eq 'echo') {
				$last = $at;
			} else {
				push @bad, "$s->{kind}: $what";
			}
		}

		push @bad, "$s->{kind}: $pings pings" if $pings < 2;
	}

	is(join("\n", @bad), '', 'pings after keep_alive of silence, echoes '
		. 'not answered (the next ping keep_alive after the echo): TCP, '
		. 'secure TCP (plain 0x00), WebSocket (empty binary message)');

	@bad = ();

	for my $s (@N) {
		my $got = join(' ', map { $_->[1] } @{$s->{events}});
		my ($ping) = map { $_->[0] } grep { $_->[1] eq 'empty' }
			@{$s->{events}};
		my ($closed) = map { $_->[0] } grep { $_->[1] eq 'closed' }
			@{$s->{events}};

		push @bad, "$s->{kind}: $got" if $got ne 'empty closed';
		next unless defined $ping && defined $closed;

		my ($p, $c) = ($ping - $s->{t_sent0}, $closed - $ping);
		push @bad, sprintf('%s: ping after %.1f s, closed %.1f s later',
			$s->{kind}, $p, $c)
			if $p < $KA - 0.3 || $p > $KA + 1.5
				|| $c < $KA - 0.3 || $c > $KA + 2;
	}

	is(join("\n", @bad), '', 'a client that never echoes: pinged after '
		. 'keep_alive, closed keep_alive after the ping (TCP, WebSocket)');
	ok($t->wait_log($SILENT, $log0 + 2) >= $log0 + 2,
		'a client that never echoes: closing logged at info');

	my $x = join(' ', map { $_->[1] } @{$X1->{events}});
	my ($at) = map { $_->[0] - $X1->{t_sent0} } grep { $_->[1] eq 'closed' }
		@{$X1->{events}};
	ok($x =~ /^(?:empty )?closed$/ && $at < 2 * $KA + 1.5,
		"takeover: the silent old stream closed ($x, "
		. sprintf('%.1f', $at // -1) . ' s after it last sent), nothing '
		. 'delivered to it');

	my %f = punch($X2, ws => $A_IP);
	is($f{bad}, '', 'takeover: the new stream still gets deliveries');

	s_close($_) for @P, @N, $X1, $X2;

	my $age = time() - $U->{t_sent};
	is(($U_first // 'nothing') . ', then: ' . (s_peek($U) || 'nothing'),
		'punch_hole_response, then: nothing', sprintf('an unbound stream '
		. '%.0f s after its last message: neither pinged nor closed', $age));
	s_close($U);
}

###############################################################################

# 8. bad input on a bound stream: closed and logged; the peer stays online
# (the grace); no worker died

{
	my @cases = (
		[ 'tcp', 'garbage frame', qr/malformed message of 20 bytes/,
			sub { $_[0]{c}->send_raw(frame("\xFF" x 20)) } ],
		[ 'ws', 'garbage message', qr/malformed message of 20 bytes/,
			sub { $_[0]{c}->send_binary("\xFF" x 20) } ],
		[ 'secure', 'frame that does not decrypt', qr/does not decrypt/,
			sub { $_[0]{c}->send_raw(frame(random(40))) } ],
		[ 'tcp', '1 MiB frame header', qr/frame of 1048576 bytes, more than/,
			sub { $_[0]{c}->send_raw(frame_header(1 << 20)) } ],
	);

	my (@bad, @ids, %before);
	$before{$_->[2]} //= $t->log_count($_->[2]) for @cases;
	my %want;
	$want{$_->[2]}++ for @cases;

	for my $case (@cases) {
		my ($kind, $what, $log, $send) = @$case;
		my $b = new_b($kind);
		push @ids, $b->{id};

		unless ($b->{ok}) {
			push @bad, "$kind: RegisterPk: $b->{reg}";
			next;
		}

		$send->($b);
		push @bad, "$kind, $what: not closed" unless s_closed($b, 3);
		push @bad, "$kind, $what: heard " . join(',', @{$b->{seen}})
			if @{$b->{seen} // []};
	}

	is(join("\n", @bad), '', 'bad input on bound streams: closed, nothing '
		. 'sent (TCP garbage, WebSocket garbage, secure undecryptable, '
		. 'oversized frame)');

	my @logged = map { $t->wait_log($_->[2], $before{$_->[2]}
		+ $want{$_->[2]}) - $before{$_->[2]} } @cases;
	is("@logged", '2 2 1 1', 'bad input on bound streams: each logged');

	is(online(@ids), '1111', 'bad input: the peers stay online (grace)');

	my @now = $t->worker_pids();
	is("@now", "@workers", 'no worker died');
	is($t->log_count(qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal/),
		0, 'no alert or signal in the error log so far');
}

###############################################################################

# 9. RegisterPk, then the client is gone at once, while the database write
# is pending: over TCP (closed, reset), secure TCP, WebSocket; no crash,
# the rows are written; the peers register again with their uuid, and
# another uuid is refused

{
	my @gone;

	for my $how (qw/ tcp reset secure ws /) {
		for (1 .. 3) {
			my $kind = $how eq 'reset' ? 'tcp' : $how;
			my $s = stream($kind, next_ip());
			my $id = new_id("gone-$how");
			my $pk = random(32);

			s_send($s, register_pk => { id => $id, uuid => "uuid-$id",
				pk => $pk });

			setsockopt($s->{c}->sock(), SOL_SOCKET, SO_LINGER,
				pack('ii', 1, 0)) if $how eq 'reset';
			s_close($s);

			push @gone, { how => $how, id => $id, pk => $pk, ip => $s->{ip},
				kind => $kind };
		}
	}

	my $want = join(' ', sort map { $_->{id} } @gone);
	my $got = wait_value(sub { db_ids(map { $_->{id} } @gone) }, $want, 8);
	is($got, $want, 'clients gone before their answer: all 12 peers '
		. 'written to the database');

	my @now = $t->worker_pids();
	is("@now", "@workers", 'clients gone before their answer: no worker '
		. 'died');

	my @got;

	for my $g (@gone[0, 3, 6, 9]) {
		my $s = new_b($g->{kind}, ip => $g->{ip}, id => $g->{id},
			uuid => "uuid-$g->{id}", pk => $g->{pk});
		push @got, "$g->{how}: $s->{reg}";
		s_close($s);
	}

	for my $g (@gone[1, 4, 7, 10]) {
		my $s = stream($g->{kind}, next_ip());
		push @got, "$g->{how}: " . s_register($s, $g->{id}, 'uuid-other',
			random(32));
		s_close($s);
	}

	is(join(', ', @got), join(', ', (map { "$_: $OK" } qw/ tcp reset
		secure ws /), map { "$_: $MISMATCH" } qw/ tcp reset secure ws /),
		'then: registered again with their uuid (OK), another uuid refused');
}

###############################################################################

# 10. IPv6: a stream registered over [::1]; a requester over [::1] is at
# B's IP (FetchLocalAddr, LocalAddr back), one over IPv4 gets PunchHole

{
	my $b = new_b('tcp6');
	is($b->{reg}, $OK, 'IPv6: RegisterPk over [::1]: OK');

	my %f = punch($b, tcp6 => '::1');
	is($f{bad}, '', 'IPv6: requester over [::1]: FetchLocalAddr on B\'s '
		. 'stream (18-byte address), LocalAddr back to A');

	%f = punch($b, tcp => $A_IP);
	is($f{bad}, '', 'IPv6: requester over IPv4: PunchHole on B\'s stream, '
		. 'B\'s IPv6 address back to A');

	%f = relay($b, tcp6 => '::1', 'u-v6');
	is($f{bad}, '', 'IPv6: RequestRelay from [::1] on B\'s stream');

	s_close($b);
}

###############################################################################

# 11. a worker killed while streams are bound to both: its streams close,
# the others still get deliveries (from requesters on any worker), new
# registrations and flows work

{
	my %by;
	my @kinds = qw/ tcp ws secure /;

	for my $n (0 .. 17) {
		my $b = new_b($kinds[$n % 3]);
		next unless $b->{ok};
		push @{$by{wk($b->{c})}}, $b;
		last if $n >= 5 && (grep { @{$by{$_} // []} >= 2 } @workers) == 2;
	}

	my $victim = $workers[0];
	my @doomed = @{$by{$victim} // []};
	my @kept = @{$by{$workers[1]} // []};

	ok(@doomed >= 2 && @kept >= 2, 'streams bound on both workers ('
		. scalar(@doomed) . ' and ' . scalar(@kept) . ')');

	my @now = $t->kill_worker($victim);
	is(scalar(grep { $_ != $victim } @now), 2, 'killed worker replaced');

	my @open = grep { !s_closed($_, 3) } @doomed;
	is(scalar(@open), 0, 'killed worker: its clients see their streams '
		. 'closed');

	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	my $t0 = time();
	$a->send_msg(punch_hole_request => { id => $doomed[0]{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' })
		if @doomed;
	my $got = norm($a->recv_msg(3));
	is($got . (time() - $t0 < 1 ? '' : ' (late)'),
		'punch_hole_response{failure=2}', 'killed worker: a requester for '
		. 'one of its peers gets OFFLINE at once');

	my @bad;

	for my $b (@kept) {
		for my $ak (qw/ tcp ws tcp /) {
			my %f = punch($b, $ak => $A_IP);
			push @bad, "$b->{kind} B $b->{id}, A over $ak: $f{bad}"
				if $f{bad};
		}
		last if @bad;
	}

	is(join("\n", @bad), '', 'killed worker: the other worker\'s streams '
		. 'still get deliveries');

	@bad = ();

	for my $kind (@kinds, @kinds) {
		my $b = new_b($kind);
		unless ($b->{ok}) {
			push @bad, "$kind: RegisterPk: $b->{reg}";
			last;
		}
		for my $ak (qw/ tcp ws /) {
			my %f = punch($b, $ak => $A_IP);
			push @bad, "$kind B, A over $ak: $f{bad}" if $f{bad};
		}
		s_close($b);
		last if @bad;
	}

	is(join("\n", @bad), '', 'killed worker: new registrations and flows '
		. 'work');

	s_close($_) for @doomed, @kept;
}

###############################################################################

# 12. reload: bound streams are idle connections, closed with the old
# workers; the peers register again on new streams and are reached

{
	my @b = map { new_b($_) } qw/ tcp ws secure /;

	$t->reload();
	is($t->replaced(), '2/2', 'reload: two new workers, the old ones gone');

	is(join(', ', map { "$_->{kind}: " . ($_->{ok} ? (s_closed($_, 1)
		? 'closed' : 'open') : $_->{reg}) } @b),
		'tcp: closed, ws: closed, secure: closed',
		'reload: the bound streams closed');

	my @bad;

	for my $b (@b) {
		my $r = new_b($b->{kind}, ip => $b->{ip}, id => $b->{id},
			uuid => $b->{uuid}, pk => $b->{pk});
		unless ($r->{ok}) {
			push @bad, "$b->{kind}: RegisterPk again: $r->{reg}";
			next;
		}
		my %f = punch($r, tcp => $A_IP);
		push @bad, "$b->{kind}: $f{bad}" if $f{bad};
		s_close($r);
	}

	is(join("\n", @bad), '', 'reload: registered again on new streams, '
		. 'reached');
}

###############################################################################

# 13. rustdesk_online_timeout after the stream closed, the peer is offline

{
	my $left = $grace_closed + $ONLINE + 1 - time();
	note(sprintf('waiting %.0f s for the end of the grace', $left))
		if $left > 0;
	sleep $left if $left > 0;

	is(online($grace_id), '0', "stream closed $ONLINE s ago: offline");

	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$a->send_msg(punch_hole_request => { id => $grace_id,
		licence_key => $key, nat_type => 1, version => '1.3.0' });
	is(norm($a->recv_msg(3)), 'punch_hole_response{failure=2}',
		"stream closed $ONLINE s ago: OFFLINE");
}

###############################################################################

# Streams: {kind} 'tcp' (plain: the server's KeyExchange offer skipped),
# 'secure' (the key exchange done), 'ws', 'tcp6' (plain over [::1]); {c}
# the client; {hb} heartbeats sent whose answer is still to come; {ip};
# {id}, {uuid}, {pk} once registered; {t_sent} when the client last sent.

sub stream {
	my ($kind, $ip) = @_;
	my $s = { kind => $kind, ip => $ip, hb => 0, send_seq => 0,
		recv_seq => 0, t_sent => time() };

	if ($kind eq 'ws') {
		$s->{c} = RustDesk::WebSocket->connect(port(3), LocalAddr => $ip);
		return $s;
	}

	if ($kind eq 'tcp6') {
		$s->{c} = RustDesk::Client->tcp(port(1), PeerHost => '::1');
		$s->{ip} = '::1';
	} else {
		$s->{c} = RustDesk::Client->tcp(port(1), LocalAddr => $ip);
	}

	return handshake($s) if $kind eq 'secure';

	# a plain client reads the offer and ignores it (so that nothing is
	# left unread when it closes: a close is a FIN, not a reset)

	my ($what, $p) = $s->{c}->next_payload(3);
	$s->{offer_seen} = 1;
	$s->{c}{buf} = frame($p) . $s->{c}{buf}
		if $what eq 'payload' && (decode($p))[0] ne 'key_exchange';

	return $s;
}

# The client side of the key exchange (PROTOCOL.md section 8): {offer} is
# 'verified' when the server's KeyExchange opens with the server key.

sub handshake {
	my ($s) = @_;
	my ($what, $p) = $s->{c}->next_payload(3);
	my ($type, $m) = defined $p && length $p ? eval { decode_msg($p) } : ();

	$s->{offer_seen} = 1;

	my @keys = ($type // '') eq 'key_exchange' ? @{$m->{keys} // []} : ();
	my $spk = @keys == 1 && length $keys[0] >= 64
		? sign_open($keys[0], $SIGN_PK) : undef;

	unless (defined $spk && length $spk == 32) {
		$s->{offer} = 'no valid offer: ' . ($type // $what);
		return $s;
	}

	$s->{offer} = 'verified';

	my ($pk, $sk) = box_keypair();
	$s->{skey} = random(32);
	$s->{c}->send_msg(key_exchange => {
		keys => [ $pk, box_easy($s->{skey}, "\0" x 24, $spk, $sk) ] });

	return $s;
}

# A new B: a stream at a new address (or $o{ip}), RegisterPk with a new
# id (or $o{id}, $o{uuid}, $o{pk}): {reg} is the answer as text, {ok} set
# when it is OK with keep_alive.

sub new_b {
	my ($kind, %o) = @_;

	my $s = stream($kind, $o{ip} // next_ip());
	$s->{id} = $o{id} // new_id($kind);
	$s->{uuid} = $o{uuid} // "uuid-$s->{id}";
	$s->{pk} = $o{pk} // random(32);
	$s->{reg} = s_register($s, $s->{id}, $s->{uuid}, $s->{pk});
	$s->{ok} = $s->{reg} eq $OK;
	$s->{t_sent0} = $s->{t_sent};
	$PK{$s->{id}} = $s->{pk} if $s->{ok};

	return $s;
}

sub new_id {
	my ($what) = @_;
	return sprintf('st-%s-%03d', $what, ++$nb);
}

sub next_ip {
	return '127.0.0.' . (10 + $nip++ % 240);
}

# RegisterPk on a stream: the answer as text.

sub s_register {
	my ($s, $id, $uuid, $pk) = @_;

	s_send($s, register_pk => { id => $id, uuid => $uuid, pk => $pk });
	my ($type, $m) = s_recv($s, 5);

	return defined $type ? msg_text($type, $m)
		: 'nothing (' . ($s->{last} // '') . ')';
}

sub s_send {
	my ($s, $type, $fields) = @_;
	$s->{t_sent} = time();

	return $s->{c}->send_raw(frame(secretbox_easy(encode_msg($type, $fields),
		seq_nonce(++$s->{send_seq}), $s->{skey} // "\0" x 32)))
		if $s->{kind} eq 'secure';

	return $s->{c}->send_msg($type, $fields);
}

sub s_heartbeat {
	my ($s) = @_;
	$s->{hb}++;
	$s->{t_sent} = time();
	return $s->{c}->send_heartbeat();
}

# The echo of a ping, as a real client sends it.

sub s_echo {
	my ($s) = @_;
	$s->{t_sent} = time();
	return $s->{c}->send_heartbeat();
}

sub s_close {
	my ($s) = @_;
	$s->{c}->close() if $s->{c};
}

# What comes next on a stream: ['empty'] (a heartbeat or ping), ['msg',
# type, fields], ['closed'], ['timeout'], ['wsping'] (a WebSocket ping,
# ponged), ['undecryptable'].

sub s_event {
	my ($s, $timeout) = @_;
	my $c = $s->{c};

	if ($s->{kind} eq 'ws') {
		for (;;) {
			my ($what, $op, $p) = $c->next_frame($timeout);
			return [ $what ] unless $what eq 'frame';

			if ($op == 0x8) {
				$s->{close_code} = unpack('H*', $p);
				return [ 'closed' ];
			}

			if ($op == 0x9) {
				$c->send_frame(0xA, $p);
				return [ 'wsping' ];
			}

			next if $op == 0xA;
			return [ "opcode $op" ] if $op != 0x2;
			return [ 'empty' ] if $p eq '';
			return [ 'msg', decode($p) ];
		}
	}

	for (;;) {
		my ($what, $p) = $c->next_payload($timeout);
		return [ $what ] unless $what eq 'payload';
		return [ 'empty' ] if $p eq '';

		if ($s->{kind} eq 'secure') {
			my $m = secretbox_open_easy($p, seq_nonce(++$s->{recv_seq}),
				$s->{skey} // "\0" x 32);
			return [ 'undecryptable' ] unless defined $m;
			return [ 'msg', decode($m) ];
		}

		my @m = decode($p);
		next if !$s->{offer_seen}++ && $m[0] eq 'key_exchange';
		return [ 'msg', @m ];
	}
}

sub decode {
	my ($p) = @_;
	my @m = eval { decode_msg($p) };
	return @m ? @m : ('undecodable', {});
}

# The next message on a stream, as a real client reads: heartbeat answers
# taken, pings echoed.  () on timeout or close ({last} says which).

sub s_recv {
	my ($s, $timeout) = @_;
	my $end = time() + ($timeout // 3);

	for (;;) {
		my $left = $end - time();
		my $e = s_event($s, $left > 0 ? $left : 0);
		my $k = $e->[0];

		if ($k eq 'empty') {
			$s->{hb} > 0 ? $s->{hb}-- : s_echo($s);
			next;
		}

		next if $k eq 'wsping';
		return @$e[1, 2] if $k eq 'msg';

		$s->{last} = $k;
		return ();
	}
}

# Whether the stream is closed within the time; what it got meanwhile is
# kept in {seen}.

sub s_closed {
	my ($s, $timeout) = @_;
	my $end = time() + $timeout;

	for (;;) {
		my $left = $end - time();
		my $e = s_event($s, $left > 0 ? $left : 0);
		return 1 if $e->[0] eq 'closed';
		return 0 if $e->[0] eq 'timeout';
		push @{$s->{seen}}, $e->[0] eq 'msg' ? $e->[1] : $e->[0];
	}
}

# What a stream got so far (without waiting): message types, or ''.

sub s_peek {
	my ($s) = @_;
	my @got;

	for (;;) {
		my $e = s_event($s, 0.2);
		last if $e->[0] eq 'timeout';
		push @got, $e->[0] eq 'msg' ? $e->[1] : $e->[0];
		last if $e->[0] eq 'closed';
	}

	return join(',', @got);
}

# A heartbeat and what came first after it: 'empty' when answered.

sub hb_answer {
	my ($s) = @_;

	s_heartbeat($s);
	my $e = s_event($s, 1.5);
	$s->{hb}-- if $e->[0] eq 'empty';

	return $e->[0] eq 'msg' ? 'msg ' . norm(@$e[1, 2]) : $e->[0];
}

# The next frame on a secure stream, raw: (the nonces of 0..5 it opens
# with, the message opened with the first as text).

sub sealed {
	my ($s) = @_;
	my ($what, $p);

	do {
		($what, $p) = $s->{c}->next_payload(3);
	} while ($what eq 'payload' && $p eq '');

	return ($what, '') unless $what eq 'payload';

	my @n = grep { defined secretbox_open_easy($p, seq_nonce($_),
		$s->{skey} // "\0" x 32) } 0 .. 5;
	return ('none', 'undecryptable') unless @n;

	$s->{recv_seq} = $n[0];
	my $m = secretbox_open_easy($p, seq_nonce($n[0]), $s->{skey});
	my @m = decode($m);

	return (join(',', @n), $m[0] eq 'register_pk_response'
		? msg_text(@m) : norm(@m));
}

# Watches streams together, for at most $secs or until $done->() is
# true: each stream's events go to {events} as [time, what] ('empty',
# 'closed', a message type ...); a stream with {echo} set echoes each
# empty frame at once ('echo' noted); a closed one is {gone}.

sub watch {
	my ($secs, $done, @s) = @_;
	my $end = time() + $secs;

	$_->{events} = [] for @s;

	while (time() < $end) {
		for my $s (grep { !$_->{gone} } @s) {
			for (;;) {
				my $e = s_event($s, 0);
				last if $e->[0] eq 'timeout';

				my $now = time();
				push @{$s->{events}}, [ $now,
					$e->[0] eq 'msg' ? $e->[1] : $e->[0] ];

				if ($e->[0] eq 'closed') {
					$s->{gone} = 1;
					last;
				}

				if ($e->[0] eq 'empty' && $s->{echo}) {
					s_echo($s);
					push @{$s->{events}}, [ $s->{t_sent}, 'echo' ];
				}
			}
		}

		last if $done->();

		my @open = grep { !$_->{gone} } @s;
		last unless @open;
		IO::Select->new(map { $_->{c}->sock() } @open)->can_read(0.05);
	}
}

sub pings {
	my ($s) = @_;
	return scalar grep { $_->[1] eq 'empty' } @{$s->{events} // []};
}

# Requesters: a new connection over TCP from $ip, over WebSocket from
# $ip, over TCP to [::1].

sub requester {
	my ($kind, $ip) = @_;

	return eval { RustDesk::WebSocket->connect(port(3), LocalAddr => $ip) }
		if $kind eq 'ws';
	return RustDesk::Client->tcp(port(1), PeerHost => '::1')
		if $kind eq 'tcp6';
	return RustDesk::Client->tcp(port(1), LocalAddr => $ip);
}

# B's connection for its answer: as it registered (WebSocket, IPv6 or
# plain TCP), from its IP.

sub answerer {
	my ($b) = @_;
	return requester($b->{kind} eq 'ws' ? 'ws'
		: $b->{kind} eq 'tcp6' ? 'tcp6' : 'tcp', $b->{ip});
}

# A punch for B from a new requester ($ak over $ip): B must hear PunchHole,
# or FetchLocalAddr when A is plain TCP at B's IP, on its stream, with A's
# address; B answers PunchHoleSent (LocalAddr) on a new connection; A must
# get PunchHoleResponse with B's address (B's local one), its signed key.
# Returns (bad => what differed, '' if nothing; pair => [A's worker,
# the worker of B's stream]).

sub punch {
	my ($b, $ak, $ip) = @_;

	my $a = requester($ak, $ip) or return (bad => "A over $ak: no upgrade");
	my $local = $ak ne 'ws' && $ip eq $b->{ip};

	$a->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
		nat_type => 1, version => '1.3.0' });

	my ($type, $m) = s_recv($b, 3);
	my $got = norm($type, $m) || 'nothing (' . ($b->{last} // '') . ')';
	my $exp = ($local ? 'fetch_local_addr{' : 'punch_hole{nat_type=1 ')
		. "relay_server=$RELAY socket_addr=" . addr($a) . '}';
	my @pair = (wk($a), wk($b->{c}));

	return (bad => "B heard $got, expected $exp", pair => \@pair)
		if $got ne $exp;

	my $bt = answerer($b) or return (bad => 'B: no upgrade', pair => \@pair);

	if ($local) {
		$bt->send_msg(local_addr => { socket_addr => $m->{socket_addr},
			local_addr => mangle('192.168.7.5', 4000), relay_server => $RELAY,
			id => $b->{id}, version => '1.3.0' });
		$exp = "punch_hole_response{is_local=1 pk=signed($b->{id}) "
			. "relay_server=$RELAY socket_addr=192.168.7.5:4000}";
	} else {
		$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
			id => $b->{id}, relay_server => $RELAY, nat_type => 2,
			version => '1.3.0' });
		$exp = "punch_hole_response{nat_type=2 pk=signed($b->{id}) "
			. "relay_server=$RELAY socket_addr=" . addr($bt) . '}';
	}

	$got = norm($a->recv_msg(3)) || 'nothing';

	my @bad;
	push @bad, "A got $got, expected $exp" if $got ne $exp;
	push @bad, 'B\'s answering connection not closed' unless $bt->closed(3);
	$a->close();

	return (bad => join('; ', @bad), pair => \@pair);
}

# A relay request for B from a new requester: B must hear RequestRelay on
# its stream with A's address and the fields kept; B's RelayResponse (new
# connection) must reach A without the address, with B's signed key.

sub relay {
	my ($b, $ak, $ip, $uuid) = @_;

	my $a = requester($ak, $ip) or return (bad => "A over $ak: no upgrade");

	$a->send_msg(request_relay => { id => $b->{id}, uuid => $uuid,
		relay_server => 'r.example:21117', secure => 1, licence_key => $key,
		conn_type => 1 });

	my ($type, $m) = s_recv($b, 3);
	my $got = norm($type, $m) || 'nothing (' . ($b->{last} // '') . ')';
	my $exp = "request_relay{conn_type=1 id=$b->{id} licence_key=$key "
		. 'relay_server=r.example:21117 secure=1 socket_addr=' . addr($a)
		. " uuid=$uuid}";
	my @pair = (wk($a), wk($b->{c}));

	return (bad => "B heard $got, expected $exp", pair => \@pair)
		if $got ne $exp;

	my $bt = answerer($b) or return (bad => 'B: no upgrade', pair => \@pair);
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => $uuid, relay_server => 'r.example:21117', id => $b->{id},
		version => '1.3.0' });

	$got = norm($a->recv_msg(3)) || 'nothing';
	$exp = "relay_response{pk=signed($b->{id}) relay_server=r.example:21117 "
		. "uuid=$uuid version=1.3.0}";

	my @bad;
	push @bad, "A got $got, expected $exp" if $got ne $exp;
	push @bad, 'B\'s answering connection not closed' unless $bt->closed(3);
	$a->close();

	return (bad => join('; ', @bad), pair => \@pair);
}

# The worker that accepted a connection (RustDesk::Client or WebSocket),
# 0 if the log does not say (IPv6).

sub wk {
	my ($c) = @_;
	return $t->worker_of($c->isa('RustDesk::Client') ? $c : $c->sock());
}

# Which of the ids are online, as '0' and '1', from the NAT port's online
# query (or the WebSocket port's).

sub online {
	my (@ids) = @_;
	my $c = RustDesk::Client->tcp(port(2));
	$c->send_msg(online_request => { id => 'st-asker', peers => \@ids });
	return states(scalar @ids, $c->recv_msg(3));
}

sub online_ws {
	my (@ids) = @_;
	my $w = RustDesk::WebSocket->connect(port(3));
	$w->send_msg(online_request => { id => 'st-asker', peers => \@ids });
	return states(scalar @ids, $w->recv_msg(3));
}

sub states {
	my ($n, $type, $m) = @_;
	return 'no answer: ' . ($type // 'nothing')
		unless ($type // '') eq 'online_response';
	return substr(unpack('B*', $m->{states} // '') . '0' x $n, 0, $n);
}

# The database: the ids of those given that have a row, sorted, read with
# the sqlite3 CLI as the file's owner.

sub db_ids {
	my (@ids) = @_;
	my $in = join(',', map { "'$_'" } @ids);
	return join(' ', split /\n/, sql($DB, "select id from peer where id in "
		. "($in) order by id"));
}

# (type, fields) as text (RustDesk::Client::msg_norm): addresses decoded,
# signed keys checked against the keys the Bs registered.

sub norm { msg_norm($key, \%PK, @_) }

###############################################################################
