#!/usr/bin/perl
# The plain FCGI loop, as FCGI.pm's documentation shows it: no arguments to FCGI::Request, so
# the listening socket is fd 0 (the web server, spawn-fcgi or the test put it there) and the
# request comes in %ENV, STDIN, STDOUT and STDERR. Run by tests/languages/perl_plack.rs on the project's
# libfcgi.so.0 (LD_LIBRARY_PATH).
#
# GET:  text/plain lines NAME=VALUE: COUNT (requests so far), PID, REQUEST_METHOD,
#       QUERY_STRING, SCRIPT_NAME, FCGI_ROLE.
# POST: the body echoed (read until EOF), with X-Body-Length and X-Body-SHA256 headers.
# QUERY_STRING warn=1 prints a line on STDERR (a FastCGI stderr record).
use strict;
use warnings;
use FCGI;
use Digest::SHA;

my $r = FCGI::Request();
print STDERR "fcgi_plain.pl: ready, IsFastCGI=" . ($r->IsFastCGI() ? 1 : 0) . "\n";
my $count = 0;
while ($r->Accept() >= 0) {
    $count++;
    my $qs = $ENV{QUERY_STRING} // "";
    print STDERR "fcgi_plain.pl: warning for request $count\n" if $qs =~ /(?:^|&)warn=1/;
    binmode STDIN;
    binmode STDOUT;
    if (($ENV{REQUEST_METHOD} // "") eq "POST") {
        my $body = "";
        while (1) {
            my $n = read(STDIN, my $buf, 65536);
            last if !defined $n || $n == 0;
            $body .= $buf;
        }
        print "Content-Type: application/octet-stream\r\n",
            "X-Body-Length: " . length($body) . "\r\n",
            "X-Body-SHA256: " . Digest::SHA::sha256_hex($body) . "\r\n",
            "Content-Length: " . length($body) . "\r\n\r\n", $body;
    } else {
        my $text = "COUNT=$count\nPID=$$\n";
        $text .= "$_=" . ($ENV{$_} // "") . "\n"
            for qw(REQUEST_METHOD QUERY_STRING SCRIPT_NAME FCGI_ROLE);
        print "Content-Type: text/plain\r\nContent-Length: " . length($text) . "\r\n\r\n", $text;
    }
    $r->Finish();
}
print STDERR "fcgi_plain.pl: done after $count requests\n";
