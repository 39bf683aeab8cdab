package RustDesk::WebSocket;

# A WebSocket client (RFC 6455) for the tests, written apart from the C
# code: the upgrade with its Sec-WebSocket-Accept checked (SHA-1 by
# Digest::SHA), masked client frames built by hand so that a test can
# also build wrong ones, server frames parsed by hand.  Over TLS with
# IO::Socket::SSL when asked.
#
#     my $w = RustDesk::WebSocket->connect(port(1), path => '/ws/id');
#     $w->send_msg(test_nat_request => { serial => 0 });
#     my ($type, $msg) = $w->recv_msg();
#
#     $w->send_frame(0x1, 'text');            # opcode, payload, %options
#     my ($op, $payload) = $w->recv_frame();  # e.g. (0x8, "\x03\xeb")

use warnings;
use strict;

use Digest::SHA qw/ sha1_base64 /;
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw/ encode_base64 /;
use Time::HiRes qw/ time /;

use RustDesk::Client qw/ encode_msg decode_msg /;

our $TIMEOUT = 5;

my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

# The socket, upgraded.  Options: path, host, headers (array of
# [name, value]), LocalAddr, PeerHost (the server's address, default
# 127.0.0.1), ssl (1: TLS without certificate checks),
# request (the whole upgrade request, sent as it is: then no check),
# byte_delay (send the request one byte at a time, with TCP_NODELAY and
# this many seconds between bytes, or this sub called with the connection
# between bytes: e.g. one that waits until the server has read it).
# Dies unless the answer is 101 with the right Sec-WebSocket-Accept;
# with 'expect_fail' returns (undef, the answer) instead.
sub connect {
	my ($class, $port, %o) = @_;

	my $sock = $class->socket($port, %o) or die "connect: $!\n";
	my $self = bless { sock => $sock, in => '' }, $class;

	my $key = encode_base64(join('', map { chr(int rand 256) } 1 .. 16), '');
	my $req = $o{request} // $self->request($key, %o);

	if ($o{byte_delay}) {
		require Socket;
		setsockopt($sock, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);

		for my $byte (split //, $req) {
			$self->send_raw($byte);

			if (ref $o{byte_delay}) {
				$o{byte_delay}->($self);
			} else {
				select undef, undef, undef, $o{byte_delay};
			}
		}
	} else {
		$self->send_raw($req);
	}

	my $answer = $self->read_answer();
	my $accept = sha1_base64($key . $GUID) . '=';

	my $ok = $answer =~ m{^HTTP/1\.1 101 }
		&& $answer =~ /^Sec-WebSocket-Accept: \Q$accept\E\r$/mi
		&& $answer =~ /^Upgrade: websocket\r$/mi;

	return $self if $ok;
	return (undef, $answer) if $o{expect_fail};
	die "no upgrade: $answer\n";
}

sub socket {
	my ($class, $port, %o) = @_;

	my %a = (PeerAddr => $o{PeerHost} // '127.0.0.1', PeerPort => $port,
		Proto => 'tcp');
	$a{LocalAddr} = $o{LocalAddr} if $o{LocalAddr};

	if ($o{ssl}) {
		require IO::Socket::SSL;
		return IO::Socket::SSL->new(%a, SSL_verify_mode => 0);
	}

	return IO::Socket::INET->new(%a);
}

sub request {
	my ($self, $key, %o) = @_;

	my $r = "GET " . ($o{path} // '/') . " HTTP/1.1\r\n"
		. "Host: " . ($o{host} // 'localhost') . "\r\n"
		. "Upgrade: websocket\r\n"
		. "Connection: Upgrade\r\n"
		. "Sec-WebSocket-Key: $key\r\n"
		. "Sec-WebSocket-Version: 13\r\n";

	$r .= "$_->[0]: $_->[1]\r\n" for @{$o{headers} // []};

	return $r . "\r\n";
}

# The HTTP answer up to the empty line; what follows stays buffered.
sub read_answer {
	my ($self) = @_;
	my $end = time() + $TIMEOUT;

	while ($self->{in} !~ /\r\n\r\n/) {
		last unless $self->fill($end - time());
	}

	my $i = index($self->{in}, "\r\n\r\n");
	return substr($self->{in}, 0, length $self->{in}, '') if $i < 0;

	return substr($self->{in}, 0, $i + 4, '');
}

sub sock { $_[0]->{sock} }

sub close {
	my ($self) = @_;
	$self->{sock}->close() if $self->{sock};
	undef $self->{sock};
}

sub send_raw {
	my ($self, $bytes) = @_;

	while (length $bytes) {
		my $n = $self->{sock}->syswrite($bytes);
		return 0 unless $n;
		substr($bytes, 0, $n) = '';
	}

	return 1;
}

# One frame.  Options: fin (default 1), masked (default 1), rsv (bits
# 4-6 of the first byte), len (announce this length instead).
sub frame {
	my ($class, $opcode, $payload, %o) = @_;

	my $fin = $o{fin} // 1;
	my $masked = $o{masked} // 1;
	my $len = $o{len} // length $payload;

	my $f = chr(($fin ? 0x80 : 0) | (($o{rsv} // 0) << 4) | $opcode);
	my $m = $masked ? 0x80 : 0;

	if ($len <= 125) {
		$f .= chr($m | $len);
	} elsif ($len <= 0xFFFF) {
		$f .= chr($m | 126) . pack('n', $len);
	} else {
		$f .= chr($m | 127) . pack('Q>', $len);
	}

	return $f . $payload unless $masked;

	my $key = join('', map { chr(int rand 256) } 1 .. 4);
	my $mask = substr($key x (int(length($payload) / 4) + 1), 0,
		length $payload);

	return $f . $key . ($payload ^ $mask);
}

sub send_frame {
	my ($self, $opcode, $payload, %o) = @_;
	return $self->send_raw(__PACKAGE__->frame($opcode, $payload, %o));
}

sub send_binary {
	my ($self, $payload) = @_;
	return $self->send_frame(0x2, $payload);
}

sub send_msg {
	my ($self, $type, $fields) = @_;
	return $self->send_binary(encode_msg($type => $fields));
}

# Reads more into the buffer: false on timeout or end.
sub fill {
	my ($self, $timeout) = @_;
	my $sock = $self->{sock} or return 0;

	if (!($sock->can('pending') && $sock->pending())) {
		return 0 if $timeout <= 0;
		return 0 unless IO::Select->new($sock)->can_read($timeout);
	}

	my $n = $sock->sysread(my $buf, 1 << 20);
	return 0 unless $n;

	$self->{in} .= $buf;
	return 1;
}

# The next server frame: (opcode, payload, fin), or () on timeout or end.
# Server frames must not be masked: a masked one dies.
sub recv_frame {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);

	for (;;) {
		my $in = $self->{in};

		if (length $in >= 2) {
			my ($b0, $b1) = unpack('CC', $in);
			die "masked server frame\n" if $b1 & 0x80;

			my $len = $b1 & 0x7F;
			my $h = 2;

			if ($len == 126) {
				$h = 4;
				$len = length $in >= 4 ? unpack('n', substr($in, 2, 2)) : -1;
			} elsif ($len == 127) {
				$h = 10;
				$len = length $in >= 10
					? unpack('Q>', substr($in, 2, 8)) : -1;
			}

			if ($len >= 0 && length $in >= $h + $len) {
				my $payload = substr($in, $h, $len);
				substr($self->{in}, 0, $h + $len) = '';
				return ($b0 & 0x0F, $payload, $b0 >> 7);
			}
		}

		return () unless $self->fill($end - time());
	}
}

# The next message: (opcode, payload), fragments joined; () on timeout.
sub recv_message {
	my ($self, $timeout) = @_;
	my ($opcode, $data);

	for (;;) {
		my ($op, $payload, $fin) = $self->recv_frame($timeout);
		return () unless defined $op;

		return ($op, $payload) if $op >= 0x8;

		$opcode = $op if $op != 0;
		$data .= $payload;

		return ($opcode, $data) if $fin;
	}
}

# The next RendezvousMessage: (type, message), () on timeout.
sub recv_msg {
	my ($self, $timeout) = @_;

	for (;;) {
		my ($op, $payload) = $self->recv_message($timeout);
		return () unless defined $op;
		next if $op == 0x9 || $op == 0xA;
		return ('close', $payload) if $op == 0x8;
		return decode_msg($payload);
	}
}

# Whether the server closed the TCP connection within the time.
sub closed {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);

	while (time() < $end) {
		my $sock = $self->{sock} or return 1;
		next unless IO::Select->new($sock)->can_read($end - time());
		my $n = $sock->sysread(my $buf, 65536);
		return 1 if !$n;
		$self->{in} .= $buf;
	}

	return 0;
}


# For streams that carry heartbeats (a registration over WebSocket): the
# next frame or what happened instead, telling a timeout from a close:
# ('frame', opcode, payload, fin), ('closed') when the server closed the
# TCP connection or reset it, ('timeout').
sub next_frame {
	my ($self, $timeout) = @_;
	my $end = time() + ($timeout // $TIMEOUT);

	for (;;) {
		my @f = $self->recv_frame(0);
		return ('frame', @f) if @f;

		my $sock = $self->{sock};
		return ('closed') if $self->{eof} || !$sock;

		my $left = $end - time();
		return ('timeout') unless IO::Select->new($sock)
			->can_read($left > 0 ? $left : 0);

		my $n = $sock->sysread(my $buf, 1 << 20);

		unless ($n) {
			$self->{eof} = 1;
			return ('closed');
		}

		$self->{in} .= $buf;
	}
}

# An empty binary message (a heartbeat).
sub send_heartbeat {
	my ($self) = @_;
	return $self->send_frame(0x2, '');
}

1;
