package RustDesk::Sodium;

# The libsodium calls the secure TCP tests need (PROTOCOL.md section 8),
# made through FFI::Platypus on the system's libsodium, so that the test
# side checks the module with the real library and not with a copy of its
# logic.  Every function takes and returns Perl byte strings.
#
#     use RustDesk::Sodium qw/ sign_open box_keypair box_easy
#         secretbox_easy secretbox_open_easy seq_nonce /;
#
#     my $box_pk = sign_open($signed, $server_sign_pk);     # undef if bad
#     my ($pk, $sk) = box_keypair();
#     my $c = box_easy($key, "\0" x 24, $their_pk, $sk);
#     my $s = secretbox_easy($msg, seq_nonce(1), $key);
#     my $m = secretbox_open_easy($s, seq_nonce(1), $key);  # undef if bad

use warnings;
use strict;

use Exporter qw/ import /;
use FFI::Platypus 1.00;
use FFI::Platypus::Buffer qw/ scalar_to_buffer /;

our @EXPORT_OK = qw/ sign_open sign_verify_detached sign_keypair
	box_keypair box_easy box_open_easy secretbox_easy secretbox_open_easy
	random seq_nonce available /;

use constant {
	SIGN_BYTES => 64,
	SIGN_PK => 32,
	SIGN_SK => 64,
	BOX_PK => 32,
	BOX_SK => 32,
	BOX_MAC => 16,
	BOX_NONCE => 24,
	SECRETBOX_KEY => 32,
	SECRETBOX_MAC => 16,
	SECRETBOX_NONCE => 24,
};

my $ffi;

# The library's path, or undef (the caller skips its tests then).
sub lib_path {
	my @found;

	eval {
		require FFI::CheckLib;
		@found = FFI::CheckLib::find_lib(lib => 'sodium');
	};

	push @found, glob('/usr/lib/*/libsodium.so*'), glob('/usr/lib/libsodium.so*'),
		glob('/usr/local/lib/libsodium.so*') unless @found;

	return $found[0];
}

sub ffi {
	return $ffi if $ffi;

	my $lib = lib_path() or die "libsodium not found\n";

	$ffi = FFI::Platypus->new(api => 1, lib => [ $lib ]);

	$ffi->attach([ sodium_init => '_init' ] => [] => 'int');
	$ffi->attach([ crypto_sign_keypair => '_sign_keypair' ]
		=> [ 'opaque', 'opaque' ] => 'int');
	$ffi->attach([ crypto_sign_open => '_sign_open' ]
		=> [ 'opaque', 'uint64*', 'opaque', 'uint64', 'opaque' ] => 'int');
	$ffi->attach([ crypto_sign_verify_detached => '_sign_verify_detached' ]
		=> [ 'opaque', 'opaque', 'uint64', 'opaque' ] => 'int');
	$ffi->attach([ crypto_box_keypair => '_box_keypair' ]
		=> [ 'opaque', 'opaque' ] => 'int');
	$ffi->attach([ crypto_box_easy => '_box_easy' ]
		=> [ 'opaque', 'opaque', 'uint64', 'opaque', 'opaque', 'opaque' ]
		=> 'int');
	$ffi->attach([ crypto_box_open_easy => '_box_open_easy' ]
		=> [ 'opaque', 'opaque', 'uint64', 'opaque', 'opaque', 'opaque' ]
		=> 'int');
	$ffi->attach([ crypto_secretbox_easy => '_secretbox_easy' ]
		=> [ 'opaque', 'opaque', 'uint64', 'opaque', 'opaque' ] => 'int');
	$ffi->attach([ crypto_secretbox_open_easy => '_secretbox_open_easy' ]
		=> [ 'opaque', 'opaque', 'uint64', 'opaque', 'opaque' ] => 'int');
	$ffi->attach([ randombytes_buf => '_randombytes_buf' ]
		=> [ 'opaque', 'size_t' ] => 'void');

	die "sodium_init failed\n" if _init() < 0;

	return $ffi;
}

# True when libsodium can be loaded (else the reason is in $@).
sub available {
	return eval { ffi(); 1 };
}

# The address of a string's bytes; the string must stay alive (and not
# grow) during the call.  An empty string gets a one-byte buffer so that
# the pointer is never NULL.
sub ptr {
	my ($ptr) = scalar_to_buffer($_[0]);
	return $ptr;
}

# A fresh output buffer of n bytes (one more, never empty, see ptr()).
sub buf {
	my ($n) = @_;
	return "\0" x ($n || 1);
}

sub check_len {
	my ($what, $s, $n) = @_;
	die "$what: " . (defined $s ? length $s : 'undef') . " bytes, "
		. "$n expected\n" unless defined $s && length $s == $n;
}


# crypto_sign_open: the message, or undef if the signature is not the
# key's (or the input too short).
sub sign_open {
	my ($sm, $pk) = @_;
	ffi();
	check_len('sign_open public key', $pk, SIGN_PK);

	return undef if length $sm < SIGN_BYTES;

	my $smc = $sm . "\0";           # never empty, see ptr()
	my $out = buf(length $sm);
	my $mlen = 0;

	return undef if _sign_open(ptr($out), \$mlen, ptr($smc), length $sm,
		ptr($pk)) != 0;

	return substr($out, 0, $mlen);
}

sub sign_verify_detached {
	my ($sig, $m, $pk) = @_;
	ffi();
	check_len('sign_verify_detached signature', $sig, SIGN_BYTES);
	check_len('sign_verify_detached public key', $pk, SIGN_PK);

	my $mc = $m . "\0";
	return _sign_verify_detached(ptr($sig), ptr($mc), length $m, ptr($pk))
		== 0;
}

# (pk, sk)
sub sign_keypair {
	ffi();
	my ($pk, $sk) = (buf(SIGN_PK), buf(SIGN_SK));
	_sign_keypair(ptr($pk), ptr($sk)) == 0 or die "crypto_sign_keypair\n";
	return ($pk, $sk);
}

# (pk, sk)
sub box_keypair {
	ffi();
	my ($pk, $sk) = (buf(BOX_PK), buf(BOX_SK));
	_box_keypair(ptr($pk), ptr($sk)) == 0 or die "crypto_box_keypair\n";
	return ($pk, $sk);
}

# crypto_box_easy(m, nonce, their pk, our sk): MAC (16 bytes) + cipher.
sub box_easy {
	my ($m, $nonce, $pk, $sk) = @_;
	ffi();
	check_len('box_easy nonce', $nonce, BOX_NONCE);
	check_len('box_easy public key', $pk, BOX_PK);
	check_len('box_easy secret key', $sk, BOX_SK);

	my $mc = $m . "\0";
	my $out = buf(length($m) + BOX_MAC);

	_box_easy(ptr($out), ptr($mc), length $m, ptr($nonce), ptr($pk),
		ptr($sk)) == 0 or die "crypto_box_easy\n";

	return $out;
}

# crypto_box_open_easy: the message, or undef.
sub box_open_easy {
	my ($c, $nonce, $pk, $sk) = @_;
	ffi();
	check_len('box_open_easy nonce', $nonce, BOX_NONCE);
	check_len('box_open_easy public key', $pk, BOX_PK);
	check_len('box_open_easy secret key', $sk, BOX_SK);

	return undef if length $c < BOX_MAC;

	my $cc = $c . "\0";
	my $out = buf(length($c) - BOX_MAC);

	return undef if _box_open_easy(ptr($out), ptr($cc), length $c,
		ptr($nonce), ptr($pk), ptr($sk)) != 0;

	return substr($out, 0, length($c) - BOX_MAC);
}

# crypto_secretbox_easy(m, nonce, key): MAC (16 bytes) + cipher.
sub secretbox_easy {
	my ($m, $nonce, $key) = @_;
	ffi();
	check_len('secretbox_easy nonce', $nonce, SECRETBOX_NONCE);
	check_len('secretbox_easy key', $key, SECRETBOX_KEY);

	my $mc = $m . "\0";
	my $out = buf(length($m) + SECRETBOX_MAC);

	_secretbox_easy(ptr($out), ptr($mc), length $m, ptr($nonce), ptr($key))
		== 0 or die "crypto_secretbox_easy\n";

	return $out;
}

# crypto_secretbox_open_easy: the message, or undef.
sub secretbox_open_easy {
	my ($c, $nonce, $key) = @_;
	ffi();
	check_len('secretbox_open_easy nonce', $nonce, SECRETBOX_NONCE);
	check_len('secretbox_open_easy key', $key, SECRETBOX_KEY);

	return undef if !defined $c || length $c < SECRETBOX_MAC;

	my $cc = $c . "\0";
	my $out = buf(length($c) - SECRETBOX_MAC);

	return undef if _secretbox_open_easy(ptr($out), ptr($cc), length $c,
		ptr($nonce), ptr($key)) != 0;

	return substr($out, 0, length($c) - SECRETBOX_MAC);
}

# n random bytes from libsodium.
sub random {
	my ($n) = @_;
	ffi();
	my $out = buf($n);
	_randombytes_buf(ptr($out), $n) if $n;
	return substr($out, 0, $n);
}

# The secure TCP nonce of message seq: its little-endian u64 in the first
# 8 bytes of 24 zero bytes.
sub seq_nonce {
	my ($seq) = @_;
	return pack('Q<', $seq) . ("\0" x 16);
}

1;
