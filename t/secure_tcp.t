#!/usr/bin/perl

# Secure TCP on the rendezvous main port (PROTOCOL.md section 8), checked
# with the real libsodium (RustDesk::Sodium, through FFI::Platypus): the
# server's signed ephemeral box key offered at accept; the client's
# KeyExchange (its box key, a crypto_box of the secretbox key); every
# frame longer than one byte a secretbox from then on, with a counter of
# its own in each direction starting at 1; empty frames (heartbeats) left
# plain.  A punch flow with an encrypted A (B answers in plain text, on
# either worker), clients that skip the exchange, forged and malformed
# exchanges, frames that do not decrypt; the NAT-test and WebSocket ports
# offer nothing.

use warnings;
use strict;

use Test::More;
use MIME::Base64 qw/ decode_base64 /;
use IO::Select;
use Time::HiRes qw/ time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame encode_msg decode_msg padded msg_norm
	addr /;
use RustDesk::WebSocket;
use RustDesk::Sodium qw/ sign_open sign_verify_detached sign_keypair
	box_keypair box_easy secretbox_easy secretbox_open_easy random
	seq_nonce /;

local $SIG{PIPE} = 'IGNORE';

plan(skip_all => "libsodium through FFI::Platypus: $@")
	unless RustDesk::Sodium::available();

my $t = Test::Nginx->new()->has()->plan(37);

# port 1: the main port (TCP and UDP); 2: NAT test; 3: WebSocket; 4: the
# relay server offered (listening, so that a health check passes)

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_4%%;',
], srv_rendezvous(1), srv_nat_test(2), srv_ws_rendezvous(3),
	srv_nat_test(4, reuseport => 0)));

$t->run();

my $key = $t->key();
my $SIGN_PK = decode_base64($key);
my $RELAY = '127.0.0.1:' . port(4);

my $A_IP = '127.0.0.2';
my @B_IPS = map { "127.0.0.$_" } 10 .. 29;
my %PK;                                 # id -> B's registered key
my $nb = 0;                             # Bs registered

# what the server logs for each kind of refusal
my $MALFORMED = qr/\[info\].*client sent a malformed key exchange/;
my $NOT_OPEN = qr/\[info\].*client sent a key exchange that does not open/;
my $NO_DECRYPT = qr/\[info\].*client sent a frame that does not decrypt/;
my $SHORT = qr/\[info\].*client sent an encrypted frame of \d+ bytes/;

###############################################################################

# 1. the offer: a KeyExchange at once, before the client says anything,
# with one key, the server's signature (64 bytes) of a 32-byte box key

{
	my $c = RustDesk::Client->tcp(port(1));
	my ($type, $m, $raw) = first_payload($c, 2);
	my @keys = ref $m && $m->{keys} ? @{$m->{keys}} : ();

	is(($type // 'nothing') . ' ' . join(',', map { length } @keys),
		'key_exchange 96', 'main port: KeyExchange first, unasked, '
		. 'one key of 96 bytes');

	my $signed = $keys[0] // '';
	my $box_pk = length $signed >= 64 ? sign_open($signed, $SIGN_PK) : undef;

	is(defined $box_pk ? length $box_pk : 'does not open', 32,
		'offer: crypto_sign_open with the server key gives a 32-byte key');
	ok(length $signed == 96 && sign_verify_detached(substr($signed, 0, 64),
		substr($signed, 64), $SIGN_PK), 'offer: 64-byte signature, then '
		. 'the 32-byte box key');

	my ($other_pk) = sign_keypair();
	my $tampered = $signed;
	substr($tampered, 80, 1) ^= "\x01" if length $tampered > 80;

	is(join(' ', map { defined $_ ? 'opens' : 'refused' }
		length $signed ? (sign_open($signed, $other_pk),
			sign_open($tampered, $SIGN_PK)) : ('', '')),
		'refused refused',
		'offer: refused by another public key, and when tampered with');

	# a new box key on every connection, whichever worker

	my %seen = (defined $box_pk ? ($box_pk => 1) : ());

	for (1 .. 5) {
		my $c2 = RustDesk::Client->tcp(port(1));
		my ($type2, $m2) = first_payload($c2, 2);
		my $pk = ($type2 // '') eq 'key_exchange'
			? sign_open($m2->{keys}[0] // '', $SIGN_PK) : undef;
		$seen{$pk // 'bad'}++;
	}

	is(join(',', sort values %seen), '1,1,1,1,1,1',
		'offer: a new signed box key on each of 6 connections');
}

###############################################################################

# 2. the handshake, then an encrypted TestNatRequest: the answer is a
# secretbox with the server's first nonce (1), whatever the client's

{
	my $c = secure();
	send_enc($c, test_nat_request => { serial => 0 });

	my $p = $c->recv_payload();
	my @opens = defined $p && $c->{skey}
		? grep { defined secretbox_open_easy($p, seq_nonce($_), $c->{skey}) }
			0 .. 4
		: ();

	is(join(',', @opens) || 'none', '1',
		'encrypted TestNatResponse: opens with nonce 1 only (of 0..4)');

	my $plain = @opens ? secretbox_open_easy($p, seq_nonce(1), $c->{skey})
		: undef;
	is(defined $plain ? norm(decode_msg($plain)) : 'nothing',
		'test_nat_response{port=' . $c->sockport() . '}',
		'encrypted TestNatResponse: the client\'s port');
	ok($c->closed(), 'encrypted TestNatResponse: then closed');
}

# on both workers (reuseport spreads the connections)

{
	my (%w, @bad);

	for my $n (1 .. 30) {
		my $c = secure();
		send_enc($c, test_nat_request => { serial => 0 });
		my $got = norm(recv_enc($c));
		my $exp = 'test_nat_response{port=' . $c->sockport() . '}';
		push @bad, "$n: $got" if $got ne $exp;
		$w{$t->worker_of($c)}++;
		last if @bad || $n >= 6 && keys %w >= 2;
	}

	is(join('; ', @bad), '', 'handshake and TestNat on several connections');
	is(scalar(grep { $_ } keys %w), 2, 'secure sessions on both workers');
}

# an encrypted A: B hears PunchHole over UDP, answers PunchHoleSent on a
# new plain TCP connection, A gets PunchHoleResponse encrypted (nonce 1)

{
	my $pb = peer_b($B_IPS[0]);
	my $a = secure(ip => $A_IP);

	send_enc($a, punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg();
	is(norm($type, $m), "punch_hole{nat_type=1 relay_server=$RELAY "
		. 'socket_addr=' . addr($a) . '}',
		'encrypted PunchHoleRequest: B hears PunchHole with A\'s address');

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr} // '',
		id => $pb->{id}, relay_server => $RELAY, nat_type => 2,
		version => '1.3.0' });

	is(norm(recv_enc($a)) . ' nonce ' . $a->{recv_seq},
		"punch_hole_response{nat_type=2 pk=signed($pb->{id}) "
		. "relay_server=$RELAY socket_addr=" . addr($bt) . '} nonce 1',
		'plain PunchHoleSent from B: A gets PunchHoleResponse encrypted');
	ok($bt->closed(), 'plain PunchHoleSent from B: B closed');
}

# more flows until one answer came from the other worker and one from
# A's own

{
	my $relayed0 = $t->log_count(qr/answer relayed from worker/);
	my (@bad, $same, $cross);

	for my $n (1 .. 30) {
		my $pb = peer_b($B_IPS[$n % @B_IPS]);
		my $a = secure(ip => $A_IP);
		my $r0 = $t->log_count(qr/answer relayed from worker/);

		my $bad = punch($pb, $a);
		push @bad, "flow $n: $bad" if $bad;
		last if $bad;               # a broken server fails fast

		$t->log_count(qr/answer relayed from worker/) > $r0
			? $cross++ : $same++;

		last if $n >= 4 && $same && $cross;
	}

	is(join("\n", @bad), '', 'encrypted punch flows: exact fields');
	is(($same ? 'same' : '') . ' ' . ($cross ? 'cross' : ''), 'same cross',
		'encrypted answers from A\'s worker and from the other one');
}

# counters: two ID_NOT_EXIST answers (server nonces 1, 2), then two
# requests for B (a retry: client nonces 3, 4), one answer (server
# nonce 3); the first two requests in one write

{
	my $pb = peer_b($B_IPS[1]);
	my $a = secure(ip => $A_IP);
	my @got;

	$a->send_raw(join('', map { enc_frame($a, punch_hole_request => {
		id => "secure-nobody-$_", licence_key => $key }) } 1 .. 2));

	push @got, norm(recv_enc($a)) . '/' . $a->{recv_seq} for 1 .. 2;

	my @holes;

	for (1 .. 2) {
		send_enc($a, punch_hole_request => { id => $pb->{id},
			licence_key => $key, nat_type => 1, version => '1.3.0' });
		push @holes, [ $pb->{udp}->recv_msg() ];
	}

	push @got, join(' ', map { $_->[0] // 'nothing' } @holes);

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(punch_hole_sent => {
		socket_addr => ref $holes[0][1] ? $holes[0][1]{socket_addr} : '',
		id => $pb->{id}, relay_server => $RELAY, nat_type => 1,
		version => '1.3.0' });

	push @got, norm(recv_enc($a)) . '/' . $a->{recv_seq};

	is(join("\n", @got), join("\n", 'punch_hole_response{}/1',
		'punch_hole_response{}/2', 'punch_hole punch_hole',
		"punch_hole_response{nat_type=1 pk=signed($pb->{id}) "
		. "relay_server=$RELAY socket_addr=" . addr($bt) . '}/3'),
		'counters: server nonces 1, 2, 3 while the client sent 1 to 4');
}

# a message larger than the first frame buffer (the frame grows), and
# several on one connection

{
	my $a = secure(ip => $A_IP);
	my @got;

	for my $n (1 .. 5) {
		my $req = Hbb::PunchHoleRequest->encode({
			id => "secure-nobody-big-$n", licence_key => $key });
		my $msg = "\x42" . RustDesk::Client::varint(3000) . padded($req, 3000);
		$a->send_raw(frame(secretbox_easy($msg,
			seq_nonce(++$a->{send_seq}), $a->{skey} // "\0" x 32)));
		push @got, norm(recv_enc($a)) . '/' . $a->{recv_seq};
	}

	is(join(' ', @got), join(' ', map { "punch_hole_response{}/$_" } 1 .. 5),
		'five encrypted 3000-byte requests on one connection: answered');
}

###############################################################################

# 3. heartbeats: an empty frame from the client is not decrypted and does
# not count; it is answered with an empty frame, not encrypted either

{
	my $before = $t->log_count(qr/$NO_DECRYPT|$SHORT/);

	my $a = secure(ip => $A_IP);
	$a->send_raw(frame(''));
	send_enc($a, punch_hole_request => { id => 'secure-nobody-hb-1',
		licence_key => $key });

	is(heartbeat($a) . ' ' . answer($a) . '/' . $a->{send_seq} . '/'
		. $a->{recv_seq}, 'empty punch_hole_response{}/1/1',
		'empty frame right after the handshake: answered empty, '
		. 'the next message is nonce 1');

	# a new connection: a message, three empty frames, a message

	$a = secure(ip => $A_IP);
	send_enc($a, punch_hole_request => { id => 'secure-nobody-hb-2',
		licence_key => $key });
	my $first = answer($a);

	$a->send_raw(frame('') x 3);
	send_enc($a, punch_hole_request => { id => 'secure-nobody-hb-3',
		licence_key => $key });

	is($first . ' ' . join(' ', map { heartbeat($a) } 1 .. 3) . ' '
		. answer($a) . '/' . $a->{send_seq} . '/' . $a->{recv_seq},
		'punch_hole_response{} empty empty empty punch_hole_response{}/2/2',
		'three empty frames between messages: three empty answers, '
		. 'the counters go on');

	is($t->log_count(qr/$NO_DECRYPT|$SHORT/) - $before, 0,
		'empty frames: nothing logged as undecryptable');
}

###############################################################################

# 4. clients that skip the exchange stay in plain text

{
	my $c = RustDesk::Client->tcp(port(1));
	my @got;

	for my $n (1 .. 2) {
		$c->send_msg(punch_hole_request => { id => "secure-nobody-plain-$n",
			licence_key => $key });
		push @got, norm($c->recv_msg());
	}

	is(join(' ', @got), 'punch_hole_response{} punch_hole_response{}',
		'plain PunchHoleRequest first: plain answers, twice');

	$c = RustDesk::Client->tcp(port(1));
	$c->send_msg(test_nat_request => { serial => 0 });
	is(norm($c->recv_msg()), 'test_nat_response{port=' . $c->sockport() . '}',
		'plain TestNatRequest first: plain answer');

	# a plain requester: the answer relayed to it is plain too

	my $pb = peer_b($B_IPS[2]);
	my $a = RustDesk::Client->tcp(port(1), LocalAddr => $A_IP);
	$a->send_msg(punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg();
	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr} // '',
		id => $pb->{id}, relay_server => $RELAY, nat_type => 2,
		version => '1.3.0' });

	is(norm($a->recv_msg()), "punch_hole_response{nat_type=2 "
		. "pk=signed($pb->{id}) relay_server=$RELAY socket_addr="
		. addr($bt) . '}', 'plain requester: plain PunchHoleResponse');

	# a KeyExchange after a plain message is no handshake

	$c = RustDesk::Client->tcp(port(1));
	$c->send_msg(punch_hole_request => { id => 'secure-nobody-plain-3',
		licence_key => $key });
	my $first = norm($c->recv_msg());
	my ($pk, $sk) = box_keypair();
	$c->send_msg(key_exchange => { keys => [ $pk, random(48) ] });

	is($first . ' ' . until_close($c), 'punch_hole_response{} closed',
		'KeyExchange after a plain message: closed, nothing sent');
}

###############################################################################

# 5. forged and malformed exchanges, frames that do not decrypt: closed,
# nothing sent, one info line each

{
	my $before = $t->log_count($NOT_OPEN);
	my @got;

	# a box made for another server key; random bytes; a box made with
	# another client key than the one sent

	my ($fake_pk) = box_keypair();
	my ($pk1, $sk1) = box_keypair();
	my ($pk2) = box_keypair();

	push @got, exchange(sub {
		my ($pk, $sk) = box_keypair();
		return [ $pk, box_easy(random(32), "\0" x 24, $fake_pk, $sk) ];
	});
	push @got, exchange(sub { [ (box_keypair())[0], random(48) ] });
	push @got, exchange(sub {
		my ($server_pk) = @_;
		return [ $pk2, box_easy(random(32), "\0" x 24, $server_pk, $sk1) ];
	});

	# the right box, with a nonce other than zero

	push @got, exchange(sub {
		my ($server_pk) = @_;
		my ($pk, $sk) = box_keypair();
		return [ $pk, box_easy(random(32), seq_nonce(1), $server_pk, $sk) ];
	});

	is(join(' ', @got), join(' ', ('closed') x 4),
		'forged key exchanges: closed without a word');
	is($t->wait_log($NOT_OPEN, $before + 4) - $before, 4,
		'forged key exchanges: "does not open" logged for each');
}

{
	my $before = $t->log_count($MALFORMED);
	my @got;

	my @cases = (
		'no key' => sub { [] },
		'one key' => sub { [ (box_keypair())[0] ] },
		'three keys' => sub { my ($spk) = @_; [ @{good_keys($spk)}, 'x' ] },
		'31-byte key' => sub { my ($spk) = @_;
			my $k = good_keys($spk); [ substr($k->[0], 1), $k->[1] ] },
		'33-byte key' => sub { my ($spk) = @_;
			my $k = good_keys($spk); [ $k->[0] . "\0", $k->[1] ] },
		'47-byte box' => sub { my ($spk) = @_;
			my $k = good_keys($spk); [ $k->[0], substr($k->[1], 1) ] },
		'49-byte box (a 33-byte key)' => sub { my ($spk) = @_;
			my ($pk, $sk) = box_keypair();
			[ $pk, box_easy(random(33), "\0" x 24, $spk, $sk) ] },
		'empty keys' => sub { [ '', '' ] },
	);

	while (my ($name, $keys) = splice(@cases, 0, 2)) {
		push @got, "$name: " . exchange($keys);
	}

	is(join(', ', @got), 'no key: closed, one key: closed, three keys: '
		. 'closed, 31-byte key: closed, 33-byte key: closed, 47-byte box: '
		. 'closed, 49-byte box (a 33-byte key): closed, empty keys: closed',
		'malformed key exchanges: closed without a word');
	is($t->wait_log($MALFORMED, $before + 8) - $before, 8,
		'malformed key exchanges: "malformed" logged for each');
}

{
	my $before = $t->log_count($NO_DECRYPT);
	my $before_short = $t->log_count($SHORT);
	my $msg = encode_msg(punch_hole_request => { id => 'secure-nobody-bad',
		licence_key => $key });
	my @got;

	# after a good handshake: the wrong nonce (0, 2, 1 with a high byte
	# set), the wrong key, garbage, a plain message; after one good
	# message: a replay of it, a skip to nonce 3

	for my $case ('nonce 0', 'nonce 2', 'wrong key', 'garbage', 'plain',
		'replay', 'skip to 3', 'high byte')
	{
		my $a = secure();
		my $k = $a->{skey} // "\0" x 32;
		my $first = '';
		my $bytes;

		if ($case eq 'nonce 0') {
			$bytes = secretbox_easy($msg, seq_nonce(0), $k);
		} elsif ($case eq 'nonce 2') {
			$bytes = secretbox_easy($msg, seq_nonce(2), $k);
		} elsif ($case eq 'wrong key') {
			$bytes = secretbox_easy($msg, seq_nonce(1), random(32));
		} elsif ($case eq 'garbage') {
			$bytes = random(40);
		} elsif ($case eq 'plain') {
			$bytes = $msg;
		} elsif ($case eq 'high byte') {
			# nonce 1 with its last byte set
			$bytes = secretbox_easy($msg, "\x01" . ("\0" x 22) . "\x01", $k);
		} else {
			$bytes = secretbox_easy($msg, seq_nonce(1), $k);
			$a->send_raw(frame($bytes));
			$first = norm(recv_enc($a)) . ' ';
			$bytes = secretbox_easy($msg, seq_nonce(3), $k)
				if $case eq 'skip to 3';
		}

		$a->send_raw(frame($bytes));
		push @got, "$case: $first" . until_close($a);
	}

	is(join(', ', @got), 'nonce 0: closed, nonce 2: closed, wrong key: '
		. 'closed, garbage: closed, plain: closed, '
		. 'replay: punch_hole_response{} closed, '
		. 'skip to 3: punch_hole_response{} closed, high byte: closed',
		'frames that do not decrypt: closed without a word');
	is($t->wait_log($NO_DECRYPT, $before + 8) - $before, 8,
		'frames that do not decrypt: "does not decrypt" logged for each');

	# shorter than the MAC

	my $a = secure();
	$a->send_raw(frame(random(10)));
	is(until_close($a), 'closed', 'a 10-byte frame after the handshake: '
		. 'closed');
	is($t->wait_log($SHORT, $before_short + 1) - $before_short, 1,
		'a 10-byte frame after the handshake: logged');

	# after all this, a good session still works

	my $c = secure();
	send_enc($c, test_nat_request => { serial => 0 });
	is(norm(recv_enc($c)), 'test_nat_response{port=' . $c->sockport() . '}',
		'then a good secure session');
}

###############################################################################

# 6. the NAT-test port and the WebSocket port offer nothing: nothing comes
# on a connection to either in its first second (the two seconds at once)

my $ws = RustDesk::WebSocket->connect(port(3));

{
	my $c = RustDesk::Client->tcp(port(2));
	my $early = $c->recv_payload(1);
	$c->send_msg(test_nat_request => { serial => 0 });
	my ($type, $m, $raw) = first_payload($c);

	is((defined $early ? 'sent ' . norm(decode_msg($early)) : 'nothing')
		. ' then ' . norm($type, $m),
		'nothing then test_nat_response{port=' . $c->sockport() . '}',
		'NAT port: no KeyExchange, a plain TestNatResponse');

	$c = RustDesk::Client->tcp(port(2));
	my ($pk) = box_keypair();
	$c->send_msg(key_exchange => { keys => [ $pk, random(48) ] });
	my $log0 = $t->log_count(qr/$MALFORMED|$NOT_OPEN/);
	is(until_close($c) . ' ' . ($t->log_count(qr/$MALFORMED|$NOT_OPEN/)
		- $log0), 'closed 0',
		'NAT port: a KeyExchange is no handshake: closed, no answer');
}

{
	my $w = $ws;
	my @early = $w->recv_msg(0.01);
	$w->send_msg(test_nat_request => { serial => 0 });
	my @r = $w->recv_msg();

	is((@early ? 'sent ' . norm(@early) : 'nothing') . ' then ' . norm(@r),
		'nothing then test_nat_response{port=' . $w->sock()->sockport()
		. '}', 'WebSocket port: no KeyExchange, a plain TestNatResponse');

	$w = RustDesk::WebSocket->connect(port(3));
	$w->send_msg(punch_hole_request => { id => 'secure-nobody-ws',
		licence_key => $key });
	is(norm($w->recv_msg()), 'punch_hole_response{}',
		'WebSocket port: a request first is answered in plain');
}

###############################################################################

# The first payload on a connection, as (type, fields, raw bytes).

sub first_payload {
	my ($c, $timeout) = @_;
	my $p = $c->recv_payload($timeout);
	return () unless defined $p;
	return (decode_msg($p), $p);
}

# A new connection to the main port with the handshake done: the client
# has {skey} (the secretbox key), {send_seq} and {recv_seq} (0: nothing
# sent or received encrypted yet), {server_box_pk}.  On a bad offer the
# failure is noted and {skey} stays undef (the tests then fail on what
# they read).

sub secure {
	my (%o) = @_;

	my $c = RustDesk::Client->tcp(port(1),
		$o{ip} ? (LocalAddr => $o{ip}) : ());
	@$c{qw/ send_seq recv_seq /} = (0, 0);

	my $spk = server_box_pk($c);
	unless (defined $spk) {
		diag('no valid KeyExchange offer');
		return $c;
	}

	$c->{server_box_pk} = $spk;

	my ($pk, $sk) = box_keypair();
	my $skey = random(32);

	$c->send_msg(key_exchange => {
		keys => [ $pk, box_easy($skey, "\0" x 24, $spk, $sk) ] });
	$c->{skey} = $skey;

	return $c;
}

# The server's box key from its offer on this connection, undef if the
# first message is not a KeyExchange that opens with the server key.

sub server_box_pk {
	my ($c) = @_;
	my ($type, $m) = first_payload($c);
	return undef unless ($type // '') eq 'key_exchange';
	return undef unless @{$m->{keys} // []} == 1;

	my $pk = sign_open($m->{keys}[0], $SIGN_PK);
	return defined $pk && length $pk == 32 ? $pk : undef;
}

# A good client half of the exchange for the server box key: [pk, box].

sub good_keys {
	my ($server_pk) = @_;
	my ($pk, $sk) = box_keypair();
	return [ $pk, box_easy(random(32), "\0" x 24, $server_pk, $sk) ];
}

# A new connection that answers the offer with the keys $make->(server box
# pk) returns: what it got until the server closed (until_close()).

sub exchange {
	my ($make) = @_;
	my $c = RustDesk::Client->tcp(port(1));
	my $spk = server_box_pk($c) // return 'no offer';

	$c->send_msg(key_exchange => { keys => $make->($spk) });

	# nothing more: an exchange taken as good would leave it open
	return until_close($c);
}

sub enc_frame {
	my ($c, $type, $fields) = @_;
	return frame(secretbox_easy(encode_msg($type, $fields || {}),
		seq_nonce(++$c->{send_seq}), $c->{skey} // "\0" x 32));
}

sub send_enc {
	my ($c, $type, $fields) = @_;
	return $c->send_raw(enc_frame($c, $type, $fields));
}

# The next message, decrypted with the next receive nonce: (type, fields),
# ('undecryptable', {}) or () on timeout or close.

sub recv_enc {
	my ($c, $timeout) = @_;
	my $p = $c->recv_payload($timeout);
	return () unless defined $p;

	my $m = secretbox_open_easy($p, seq_nonce(++$c->{recv_seq}),
		$c->{skey} // "\0" x 32);
	return ('undecryptable(' . length($p) . ' bytes)', {})
		unless defined $m;

	return decode_msg($m);
}

# The next frame when it is a heartbeat: "empty", else what it was.

sub heartbeat {
	my ($c) = @_;
	my $p = $c->recv_payload(2);
	return 'nothing' unless defined $p;
	return 'empty' if $p eq '';
	return 'a frame of ' . length($p) . ' bytes';
}

# The next encrypted message as text, or what happened instead: "no
# answer, closed" or "no answer, open".

sub answer {
	my ($c) = @_;
	my $got = norm(recv_enc($c, 2));
	return $got if $got ne '';
	return 'no answer, ' . ($c->closed(1) ? 'closed' : 'open');
}

# What the server sent (raw payloads, hex) until it closed: "closed",
# "hex:... closed", or "... open" when it did not close in time.

sub until_close {
	my ($c) = @_;
	my @got;

	my $end = time() + 5;
	my $sel = IO::Select->new($c->sock());

	while ((my $left = $end - time()) > 0) {
		my @p = RustDesk::Client::unframe(\$c->{buf});
		push @got, map { 'hex:' . unpack('H*', $_) } @p;

		last unless $sel->can_read($left);
		my $n = $c->sock()->sysread($c->{buf}, 65536, length $c->{buf});
		return join(' ', @got, length $c->{buf}
			? 'partial:' . unpack('H*', $c->{buf}) : (), 'closed')
			if !defined $n || $n == 0;
	}

	return join(' ', @got, 'open');
}

# A new peer B registered over UDP from a new socket at $ip.

sub peer_b {
	my ($ip) = @_;
	return RustDesk::Client->udp_peer(port(1), sprintf('secure-b-%03d', ++$nb),
		LocalAddr => $ip, keys => \%PK);
}

# A full flow with an encrypted A: what differed from the spec, '' if
# nothing.

sub punch {
	my ($pb, $a) = @_;

	send_enc($a, punch_hole_request => { id => $pb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $pb->{udp}->recv_msg();
	my $got = norm($type, $m);
	my $exp = "punch_hole{nat_type=1 relay_server=$RELAY socket_addr="
		. addr($a) . '}';
	return "PunchHole: $got, expected $exp" if $got ne $exp;

	my $bt = RustDesk::Client->tcp(port(1), LocalAddr => $pb->{ip});
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $pb->{id}, relay_server => $RELAY, nat_type => 2,
		version => '1.3.0' });

	$got = norm(recv_enc($a)) . ' nonce ' . $a->{recv_seq};
	$exp = "punch_hole_response{nat_type=2 pk=signed($pb->{id}) "
		. "relay_server=$RELAY socket_addr=" . addr($bt) . '} nonce 1';

	my @bad;
	push @bad, "PunchHoleResponse: $got, expected $exp" if $got ne $exp;
	push @bad, 'B not closed' unless $bt->closed();

	return join('; ', @bad);
}


# (type, fields) as text (RustDesk::Client::msg_norm): addresses decoded,
# signed keys checked against the keys the Bs registered.

sub norm { msg_norm($key, \%PK, @_) }

###############################################################################
