package RustDesk::Client;

# The test side of the RustDesk protocol (PROTOCOL.md), written apart from
# the C code: TCP framing (section 2), RendezvousMessage encoding through
# Google::ProtocolBuffers (section 3), AddrMangle with Math::BigInt
# (section 4), Ed25519 signature checks with CryptX (section 5).
#
#     my $c = RustDesk::Client->tcp(port(1));
#     $c->send_msg(test_nat_request => { serial => 0 });
#     my ($type, $msg) = $c->recv_msg();

use warnings;
use strict;

use Exporter qw/ import /;
use File::Basename qw/ dirname /;
use Google::ProtocolBuffers;
use IO::Select;
use IO::Socket::INET;
use Math::BigInt;
use Socket qw/ inet_aton inet_ntoa /;
use Time::HiRes qw/ time /;
use Crypt::PK::Ed25519;
use MIME::Base64 qw/ decode_base64 /;

our @EXPORT_OK = qw/ frame frame_header unframe encode_msg decode_msg
	varint padded random_bytes mangle demangle open_signed_pk msg_text
	msg_fields msg_norm addr /;

Google::ProtocolBuffers->parsefile(dirname(__FILE__) . '/rendezvous.proto2',
	{ create_accessors => 1 });

our $TIMEOUT = 5;


# Framing (section 2)

sub frame_header {
	my ($len) = @_;

	return pack('C', $len << 2) if $len <= 0x3F;
	return pack('v', ($len << 2) | 1) if $len <= 0x3FFF;
	if ($len <= 0x3FFFFF) {
		my $h = ($len << 2) | 2;
		return pack('vC', $h & 0xFFFF, $h >> 16);
	}
	return pack('V', ($len << 2) | 3) if $len <= 0x3FFFFFFF;
	die "frame too large\n";
}

sub frame {
	my ($payload) = @_;
	return frame_header(length $payload) . $payload;
}

# Takes whole frames off the front of $$buf: a list of payloads.
sub unframe {
	my ($buf) = @_;
	my @out;

	while (length $$buf) {
		my $first = ord(substr($$buf, 0, 1));
		my $hlen = ($first & 3) + 1;
		last if length $$buf < $hlen;

		my $h = 0;
		$h |= ord(substr($$buf, $_, 1)) << (8 * $_) for 0 .. $hlen - 1;
		my $len = $h >> 2;
		last if length $$buf < $hlen + $len;

		push @out, substr($$buf, $hlen, $len);
		substr($$buf, 0, $hlen + $len) = '';
	}

	return @out;
}


# Messages (section 3): a RendezvousMessage carries one named member.

sub encode_msg {
	my ($type, $fields) = @_;
	return Hbb::RendezvousMessage->encode({ $type => $fields });
}

# Returns (type, fields) of the member that is set, () if none.
sub decode_msg {
	my ($bytes) = @_;

	my $m = Hbb::RendezvousMessage->decode($bytes);
	for my $k (sort keys %$m) {
		return ($k, $m->{$k}) if defined $m->{$k};
	}

	return ();
}

# Hand-made wire bytes: a protobuf varint; a message grown to exactly $len
# bytes by an unknown field (number 1000, length-delimited) at its end;
# $n random bytes (for garbage input).

sub varint {
	my ($n) = @_;
	my $s = '';

	while ($n >= 0x80) {
		$s .= chr(($n & 0x7F) | 0x80);
		$n >>= 7;
	}

	return $s . chr($n);
}

sub padded {
	my ($payload, $len) = @_;
	my $field = "\xc2\x3e";                 # (1000 << 3) | 2, as a varint
	my $room = $len - length($payload) - length($field);

	for my $vl (1 .. 3) {
		my $data = $room - $vl;
		next if $data < 0;
		my $v = varint($data);
		return $payload . $field . $v . ("\x00" x $data)
			if length $v == $vl;
	}

	die "cannot pad to $len\n";
}

sub random_bytes {
	my ($n) = @_;
	my $s = pack('N*', map { int(rand(4294967296)) } 1 .. int($n / 4) + 1);
	return substr($s, 0, $n);
}


# A decoded message as one line of text, for comparing in tests:
# "type{field=value ...}", defaults left out, binary values in hex.

sub msg_text {
	my ($type, $m) = @_;
	return '' unless defined $type;
	return "$type" . msg_fields($m);
}

sub msg_fields {
	my ($m) = @_;
	my @f;

	for my $k (sort keys %$m) {
		my $v = $m->{$k};
		next unless defined $v;

		if (ref $v eq 'ARRAY') {
			next unless @$v;
			$v = join(',', @$v);
		} elsif (ref $v) {
			$v = msg_fields($v);
		} else {
			next if $v eq '' || $v eq '0';
			$v = 'hex:' . unpack('H*', $v) if $v =~ /[^\x20-\x7e]/;
		}

		push @f, "$k=$v";
	}

	return '{' . join(' ', @f) . '}';
}


# A decoded message as msg_text() gives it, for comparing in tests with
# what the server must send: its addresses decoded ("ip:port"), the states
# of an OnlineResponse in hex, a signed key checked: "signed(id)" when the
# server's key ($server_pk, base64) signed it and it is the key that id
# registered ($pks->{id}), "signed(id, other key)", or "unsigned".

sub msg_norm {
	my ($server_pk, $pks, $type, $m) = @_;
	return '' unless defined $type;
	return $type unless ref $m;

	my %m = %$m;

	$m{states} = 'hex:' . unpack('H*', $m{states}) if defined $m{states};

	for my $k (qw/ socket_addr local_addr /) {
		next unless defined $m{$k} && length $m{$k};
		$m{$k} = join(':', demangle($m{$k}));
	}

	if (defined $m{pk} && length $m{pk}) {
		my ($id, $pk) = open_signed_pk($m{pk}, $server_pk);
		$m{pk} = !defined $id ? 'unsigned'
			: defined $pks->{$id} && $pks->{$id} eq $pk ? "signed($id)"
			: "signed($id, other key)";
	}

	return $type . msg_fields(\%m);
}


# AddrMangle (section 4)

sub mangle {
	my ($ip, $port, $tm) = @_;

	if ($ip =~ /:/) {
		require Socket;
		my $a = Socket::inet_pton(Socket::AF_INET6(), $ip);
		return $a . pack('v', $port);
	}

	$tm = int(time() * 1_000_000) & 0xFFFFFFFF unless defined $tm;

	my $ipn = unpack('V', inet_aton($ip));
	my $v = Math::BigInt->new($ipn)->badd($tm)->blsft(49)
		->bior(Math::BigInt->new($tm)->blsft(17))
		->bior(Math::BigInt->new($port + ($tm & 0xFFFF)));

	my $bytes = '';
	while ($v->is_pos()) {
		$bytes .= chr($v->copy()->band(0xFF)->numify());
		$v->brsft(8);
	}

	return $bytes;
}

# Returns (ip, port); ('0.0.0.0', 0) for a bad length.
sub demangle {
	my ($bytes) = @_;

	if (length $bytes == 18) {
		return (Socket::inet_ntop(Socket::AF_INET6(), substr($bytes, 0, 16)),
			unpack('v', substr($bytes, 16)));
	}

	return ('0.0.0.0', 0) if length $bytes > 16;

	my $v = Math::BigInt->new(0);
	for my $i (reverse 0 .. length($bytes) - 1) {
		$v->blsft(8)->bior(ord(substr($bytes, $i, 1)));
	}

	my $mask32 = Math::BigInt->new('0xFFFFFFFF');
	my $tm = $v->copy()->brsft(17)->band($mask32);
	my $ip = $v->copy()->brsft(49)->bsub($tm)->band($mask32);
	my $port = $v->copy()->band(0xFFFFFF)->bsub($tm->copy()->band(0xFFFF))
		->band(0xFFFF);

	return (inet_ntoa(pack('V', $ip->numify())), $port->numify());
}


# Signed peer keys (section 5): returns (id, pk) if $signed is a valid
# crypto_sign of IdPk by the server key (base64), else ().

sub open_signed_pk {
	my ($signed, $server_pk_b64) = @_;

	return () if length $signed < 64;

	my $key = Crypt::PK::Ed25519->new();
	$key->import_key_raw(decode_base64($server_pk_b64), 'public');

	my ($sig, $msg) = (substr($signed, 0, 64), substr($signed, 64));
	return () unless $key->verify_message($sig, $msg);

	my $idpk = Hbb::IdPk->decode($msg);
	return ($idpk->{id}, $idpk->{pk});
}


# Connections

# Options: those of IO::Socket::INET (LocalAddr ...), and PeerHost: the
# server's address (default 127.0.0.1; '::1' for IPv6 loopback, through
# IO::Socket::IP).
sub tcp {
	my ($class, $port, %opts) = @_;

	my $s = _socket($port, 'tcp', %opts);
	$s->autoflush(1);

	return bless { sock => $s, buf => '', tcp => 1 }, $class;
}

sub udp {
	my ($class, $port, %opts) = @_;

	return bless { sock => _socket($port, 'udp', %opts), tcp => 0 }, $class;
}

sub _socket {
	my ($port, $proto, %opts) = @_;
	my $host = delete $opts{PeerHost} // '127.0.0.1';

	my $s;

	if ($host =~ /:/) {
		require IO::Socket::IP;
		$s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port,
			Proto => $proto, %opts)
			or die "Can't open $proto to [$host]:$port: $!\n";
		return $s;
	}

	$s = IO::Socket::INET->new(PeerAddr => "$host:$port",
		Proto => $proto, %opts)
		or die "Can't open $proto to $host:$port: $!\n";

	return $s;
}

sub sock { $_[0]->{sock} }

# The local address of a client, "ip:port": a RustDesk::Client, or
# anything else with a sock() (a RustDesk::WebSocket).
sub addr {
	my ($c) = @_;
	my $s = $c->sock();
	return $s->sockhost() . ':' . $s->sockport();
}

sub sockport { $_[0]->{sock}->sockport() }

sub close {
	my ($self) = @_;
	CORE::close($self->{sock}) if $self->{sock};
	undef $self->{sock};
}

# A peer registered over UDP as a client does it, from a new socket to
# $port (%opts: those of udp(), and keys: a hash where its key is kept
# under its id, as msg_norm() looks for it): RegisterPk with uuid
# "uuid-$id" and a random 32-byte key, then RegisterPeer answered without
# request_pk.  Returns { id, pk, udp, ip (the socket's) }; dies with what
# came instead.
sub udp_peer {
	my ($class, $port, $id, %opts) = @_;
	my $keys = delete $opts{keys};
	my $pk = random_bytes(32);
	my $u = $class->udp($port, %opts);

	$u->send_msg(register_pk => { id => $id, uuid => "uuid-$id", pk => $pk });
	my ($type, $m) = $u->recv_msg();
	die "$id: RegisterPk: " . (msg_text($type, $m) || 'nothing') . "\n"
		unless ($type // '') eq 'register_pk_response'
		&& !($m->{result} // 0);

	$u->send_msg(register_peer => { id => $id, serial => 0 });
	($type, $m) = $u->recv_msg();
	die "$id: RegisterPeer: " . (msg_text($type, $m) || 'nothing') . "\n"
		unless ($type // '') eq 'register_peer_response'
		&& !$m->{request_pk};

	$keys->{$id} = $pk if $keys;

	return { id => $id, pk => $pk, udp => $u, ip => $u->sock()->sockhost() };
}

# Raw bytes, as they are (for garbage and split-frame tests).
sub send_raw {
	my ($self, $bytes) = @_;
	local $SIG{PIPE} = 'IGNORE';
	return $self->{sock}->syswrite($bytes);
}

sub send_msg {
	my ($self, $type, $fields) = @_;
	my $payload = encode_msg($type, $fields || {});

	return $self->send_raw($self->{tcp} ? frame($payload) : $payload);
}

# Next payload (framed over TCP, a datagram over UDP), undef on timeout or
# when the peer closed.
sub recv_payload {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);
	my $sel = IO::Select->new($self->{sock});

	unless ($self->{tcp}) {
		return undef unless $sel->can_read($timeout // $TIMEOUT);
		my $buf;
		$self->{sock}->recv($buf, 65536) // return undef;
		return $buf;
	}

	for (;;) {
		my @p = unframe(\$self->{buf});
		if (@p) {
			# put back what followed the first frame
			$self->{buf} = join('', map { frame($_) } @p[1 .. $#p])
				. $self->{buf};
			return $p[0];
		}

		my $left = $end - time();
		return undef if $left <= 0 || !$sel->can_read($left);

		my $n = $self->{sock}->sysread($self->{buf}, 65536,
			length $self->{buf});
		return undef unless $n;
	}
}

# (type, fields) of the next message, () on timeout or close.
# The server's KeyExchange that opens the main TCP port (secure TCP,
# PROTOCOL.md section 8) is skipped, as a client that does not use it
# skips it, unless $c->{key_exchange} is set.
sub recv_msg {
	my ($self, $timeout) = @_;

	for (;;) {
		my $p = $self->recv_payload($timeout);
		return () unless defined $p;

		my ($type, $m) = decode_msg($p);
		next if defined $type && $type eq 'key_exchange'
			&& !$self->{key_exchange};

		return ($type, $m);
	}
}

# True when the server closed the connection within the timeout (reading
# and discarding anything it still sent).
sub closed {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);
	my $sel = IO::Select->new($self->{sock});

	while ((my $left = $end - time()) > 0) {
		return 0 unless $sel->can_read($left);
		my $n = $self->{sock}->sysread(my $buf, 65536);
		return 1 if !defined $n || $n == 0;
	}

	return 0;
}

# For streams that carry heartbeats (a registration over TCP): the next
# frame or what happened instead, telling a timeout from a close:
# ('payload', bytes) ('' for an empty frame), ('closed') when the server
# closed or reset the connection (bytes of a partial frame are dropped),
# ('timeout').
sub next_payload {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);
	my $sel = IO::Select->new($self->{sock} // return ('closed'));

	for (;;) {
		my @p = unframe(\$self->{buf});
		if (@p) {
			$self->{buf} = join('', map { frame($_) } @p[1 .. $#p])
				. $self->{buf};
			return ('payload', $p[0]);
		}

		return ('closed') if $self->{eof};

		my $left = $end - time();
		return ('timeout') unless $sel->can_read($left > 0 ? $left : 0);

		my $n = $self->{sock}->sysread($self->{buf}, 65536,
			length $self->{buf});

		unless ($n) {
			$self->{eof} = 1;
			return ('closed');
		}
	}
}

# An empty frame (a heartbeat): the single byte 0x00.
sub send_heartbeat {
	my ($self) = @_;
	return $self->send_raw(frame(''));
}

1;
