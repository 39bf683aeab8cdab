package RustDesk::Session;

# A whole relayed RustDesk session against a running server, as two
# clients make it (PROTOCOL.md sections 4 to 7), for any test that has the
# ports and the key of a server: the harness's nginx, a system nginx, a
# conf.example.  It needs no Test::Nginx object and reads no log.
#
#     my $why = RustDesk::Session::relayed_session(host => '127.0.0.1',
#         rendezvous_port => 21116, relay_port => 21117, key => $pk);
#     is($why, '', 'a relayed session');
#
# 1. peer B registers over UDP (RegisterPk, RegisterPeer);
# 2. requester A sends RequestRelay for B's id over TCP, with a new uuid and
#    the key as licence_key;
# 3. B hears RequestRelay over UDP and answers RelayResponse on a new TCP
#    connection; A gets RelayResponse (with B's key signed by the server,
#    checked when the key is a public key);
# 4. A and B each connect to the relay, send RequestRelay with the uuid and
#    the key, and bytes pass both ways.
#
# Returns '' on success, else one line saying what failed; it never dies
# on a protocol failure.

use warnings;
use strict;

use Errno ();
use IO::Select;
use MIME::Base64 qw/ decode_base64 /;
use Time::HiRes qw/ sleep time /;

use RustDesk::Client qw/ open_signed_pk msg_text /;
use RustDesk::Relay qw/ relay_request /;

# Options: rendezvous_port, relay_port (required); host (the server's
# address, default 127.0.0.1; also '::1'); relay_host (the relay's, when
# it is another: default host); key (what both clients present,
# default empty); relay_key (what the relay clients present, default the
# key: another value tests a refusal); timeout (seconds per step, default
# 5).
sub relayed_session {
	my (%o) = @_;

	my $why = eval { _session(%o) };
	return $why if defined $why;

	(my $err = $@ || 'unknown failure') =~ s/\s+\z//;
	$err =~ s/\s*\n\s*/; /g;
	return $err;
}

# A relay client presenting this key (default: a wrong one) is closed by
# the relay at once: '' if it was, else why not.  Options: relay_port,
# host, key, timeout (default 3).
sub relay_refused {
	my (%o) = @_;
	my $key = $o{key} // 'not-the-key';

	my $r = eval {
		my $c = _relay_side($o{host}, $o{relay_port}, 'refused-' . _rand(),
			$key);
		my ($how) = RustDesk::Relay::wait_close($c, $o{timeout} // 3);
		$c->close();
		$how eq 'timeout' ? 'the relay kept the connection open' : '';
	};

	return $r if defined $r;
	(my $err = $@ || 'unknown failure') =~ s/\s+\z//;
	return $err;
}

# A relay session brokered by the rendezvous at port (options: host, key):
# A's RequestRelay for the peer (RustDesk::Client->udp_peer's) passed on,
# as the peer hears it.  Returns its uuid, "<name>-<random>"; dies when the
# peer hears something else.
sub brokered_uuid {
	my ($port, $peer, $name, %o) = @_;
	my $uuid = "$name-" . int(rand(1e9));

	my $c = RustDesk::Client->tcp($port, PeerHost => $o{host} // '127.0.0.1');
	$c->send_msg(request_relay => { id => $peer->{id}, uuid => $uuid,
		licence_key => $o{key} // '' });
	my ($type, $m) = $peer->{udp}->recv_msg();
	$c->close();

	die "the peer heard " . ($type // 'nothing') . "\n"
		unless ($type // '') eq 'request_relay' && $m->{uuid} eq $uuid;

	return $uuid;
}

sub _session {
	my (%o) = @_;

	my $host = $o{host} // '127.0.0.1';
	my $rport = $o{rendezvous_port} or die "no rendezvous_port\n";
	my $lport = $o{relay_port} or die "no relay_port\n";
	my $key = $o{key} // '';
	my $relay_key = $o{relay_key} // $key;
	my $timeout = $o{timeout} // 5;

	my $id = 'session' . _rand();
	my $uuid = 'uuid-' . _rand() . '-' . _rand();
	my $rhost = $o{relay_host} // $host;
	my $relay = ($rhost =~ /:/ ? "[$rhost]" : $rhost) . ":$lport";
	my %peer = (PeerHost => $host);

	# 1. B registers over UDP (udp_peer dies with what came instead)

	my $b = RustDesk::Client->udp_peer($rport, $id, %peer);

	# 2. A asks for a relay to B

	my $a = RustDesk::Client->tcp($rport, %peer);
	$a->send_msg(request_relay => { id => $id, uuid => $uuid,
		relay_server => $relay, licence_key => $key });

	# 3. B hears it over UDP, answers on a new TCP connection

	my ($type, $m) = $b->{udp}->recv_msg($timeout);
	return 'B: ' . (msg_text($type, $m) || 'nothing') . ' instead of '
		. 'RequestRelay' unless ($type // '') eq 'request_relay';
	return "B: RequestRelay for uuid '$m->{uuid}', not '$uuid'"
		unless ($m->{uuid} // '') eq $uuid;
	return 'B: RequestRelay without A\'s address'
		unless length($m->{socket_addr} // '');

	my $bt = RustDesk::Client->tcp($rport, %peer);
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => $uuid, relay_server => $m->{relay_server} || $relay,
		id => $id, version => '1.3.0' });

	($type, my $r) = $a->recv_msg($timeout);
	$bt->close();
	$a->close();
	$b->{udp}->close();

	return 'A: ' . (msg_text($type, $r) || 'nothing') . ' instead of '
		. 'RelayResponse' unless ($type // '') eq 'relay_response';
	return "A: RelayResponse for uuid '$r->{uuid}', not '$uuid'"
		unless ($r->{uuid} // '') eq $uuid;

	# B's key, signed with the server's key (when the key is a public key
	# the signature can be checked with)

	if (_is_public_key($key)) {
		my ($sid, $spk) = open_signed_pk($r->{pk} // '', $key);
		return 'A: RelayResponse without B\'s key signed by the server key'
			unless defined $sid && $sid eq $id && $spk eq $b->{pk};
	}

	# 4. both sides at the relay, bytes both ways

	return _relay_pair($rhost, $lport, $uuid, $relay_key, $timeout);
}

# A comes first, then B.  Which of them the relay sees first does not
# matter (the second to arrive pairs with the first), so nothing waits for
# A to be "waiting"; B is tried again (at most 3 times, 0.2 s apart) only
# if the relay closed B while A is still there.
sub _relay_pair {
	my ($host, $port, $uuid, $key, $timeout) = @_;

	local $SIG{PIPE} = 'IGNORE';

	my $a = _relay_side($host, $port, $uuid, $key);
	my ($b, $why);

	for my $try (1 .. 3) {
		$b = _relay_side($host, $port, $uuid, $key);
		$why = _exchange($b, $a, 'hello from B', $timeout);
		last unless $why;

		my $retry = _closed($b) && !_closed($a);
		$b->close();

		unless ($retry) {
			$a->close();
			return "relay: B to A: $why";
		}

		sleep 0.2;
	}

	if ($why) {
		$a->close();
		return "relay: B to A: $why (B closed by the relay 3 times)";
	}

	# a bigger block the other way: forwarding, not only a greeting, both
	# ways

	my $block = join('', map { chr(($_ * 7 + 3) % 256) } 0 .. 65535);
	$why = _exchange($a, $b, $block, $timeout);

	$a->close();
	$b->close();

	return $why ? "relay: A to B: $why" : '';
}

# One relay side: connected, its RequestRelay sent.
sub _relay_side {
	my ($host, $port, $uuid, $key) = @_;

	my $c = RustDesk::Client->tcp($port, PeerHost => $host // '127.0.0.1');
	my %f = (uuid => $uuid);
	$f{licence_key} = $key if length($key // '');
	$c->send_raw(relay_request(%f));

	return $c;
}

# Bytes written on one side and read on the other, both at once (so that
# neither can block the other, and nothing waits longer than the
# timeout): '' or why not ('eof', 'reset', 'timeout' or 'write: ...',
# with how much came).
sub _exchange {
	my ($from, $to, $bytes, $timeout) = @_;

	my ($fs, $ts) = ($from->sock(), $to->sock());
	my $end = time() + $timeout;
	my ($sent, $got, $how) = (0, '', 'timeout');

	$fs->blocking(0);

	while (length $got < length $bytes) {
		my $left = $end - time();
		last if $left <= 0;

		my ($rin, $win) = ('', '');
		vec($rin, fileno($ts), 1) = 1;
		vec($win, fileno($fs), 1) = 1 if $sent < length $bytes;

		my $n = select(my $rout = $rin, my $wout = $win, undef, $left);
		next if $n <= 0;

		if (vec($wout, fileno($fs), 1)) {
			my $w = syswrite($fs, $bytes, length($bytes) - $sent, $sent);
			if (defined $w) {
				$sent += $w;
			} elsif (!$!{EAGAIN} && !$!{EINTR}) {
				$how = "write: $!";
				last;
			}
		}

		if (vec($rout, fileno($ts), 1)) {
			my $r = sysread($ts, $got, 65536, length $got);
			if (!defined $r && !$!{EAGAIN} && !$!{EINTR}) {
				$how = 'reset';
				last;
			} elsif (defined $r && $r == 0) {
				$how = 'eof';
				last;
			}
		}
	}

	$fs->blocking(1);

	return '' if $got eq $bytes;
	return 'other bytes came' if length $got >= length $bytes;
	return "$how after " . length($got) . ' of ' . length($bytes) . ' bytes';
}

# True if the other end has closed the connection (nothing more is
# expected on it: what is read is dropped).
sub _closed {
	my ($c) = @_;
	my $s = $c->sock() or return 1;

	return 0 unless IO::Select->new($s)->can_read(0);
	my $n = sysread($s, my $buf, 65536);
	return !$n;
}

sub _is_public_key {
	my ($key) = @_;
	return $key =~ m{^[A-Za-z0-9+/]{43}=\z} && length(decode_base64($key)) == 32;
}

sub _rand {
	return int(rand(1e9));
}

1;
