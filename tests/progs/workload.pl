# A deterministic allocation-heavy Perl workload for gomalloc's test suite:
# hashes of arrays, strings, regexes, sort, join/split, sprintf, nested
# structures built and torn down.  Prints digests that must be identical
# with and without LD_PRELOAD=libgomalloc.so.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $x = 12345;
sub rnd { $x = ($x * 1103515245 + 12345) % 2147483648; return $x >> 8; }

sub word {
    my $k = 1 + rnd() % 20;
    return join '', map { chr(97 + rnd() % 26) } 1 .. $k;
}

my @words = map { word() } 1 .. 90000;

my %count;
$count{$_}++ for @words;
my %by_prefix;
for my $i (0 .. $#words) {
    push @{ $by_prefix{ substr($words[$i], 0, 2) } }, $i;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 199];
print "hash ", scalar(keys %count), " ", md5_hex(join ',', @top), "\n";
print "prefix ", scalar(keys %by_prefix), " ",
    md5_hex(join ',', map { "$_=" . scalar(@{ $by_prefix{$_} }) } sort keys %by_prefix), "\n";

my $text = join ' ', @words;
(my $swapped = $text) =~ s/([aeiou])([^aeiou ])/$2$1/g;
my @found = ($text =~ /\b([a-f]\w{3,6})\b/g);
my @split = split /[aeiou]+/, $text;
print "text ", length($text), " ", md5_hex($swapped), " ", scalar(@found), " ", scalar(@split), "\n";

my @recs;
for my $i (1 .. 40000) {
    push @recs, { id => $i, name => sprintf("rec%06d", $i), tags => [ map { rnd() % 100 } 1 .. rnd() % 9 ],
                  text => word() x (1 + $i % 5) };
}
my @sorted = sort { $a->{text} cmp $b->{text} || $a->{id} <=> $b->{id} } @recs;
my $sum = 0;
$sum += $_ for map { @{ $_->{tags} } } @recs;
splice(@recs, 0, 20000);
my %idx = map { $_->{name} => $_ } @recs;
delete @idx{ grep { /5$/ } keys %idx };
print "recs ", scalar(@sorted), " $sum ", scalar(keys %idx), " ",
    md5_hex(join '|', map { "$_->{id}:$_->{text}" } @sorted[0 .. 999]), "\n";

my @nums = map { rnd() % 1000003 } 1 .. 200000;
my @ns = sort { $a <=> $b } @nums;
my %seen;
my @uniq = grep { !$seen{$_}++ } @ns;
print "nums ", scalar(@uniq), " ", md5_hex(join ',', @ns[0 .. 4999]), "\n";

my $big = '';
for my $i (1 .. 20000) { $big .= sprintf("%05d:%s;", $i, $words[$i]); }
my $copy = reverse $big;
print "big ", length($big), " ", md5_hex($copy), "\n";
