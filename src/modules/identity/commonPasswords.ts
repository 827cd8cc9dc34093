// A built-in list of passwords attackers try first (PCI DSS 8.3.6 asks for strength; NIST
// SP 800-63B 5.1.1.2 asks to refuse known-common values). Two parts:
//   - COMMON_PASSWORDS: whole passwords from public breach top lists that are 12 characters or
//     longer with letters and digits, so that the length and character rules alone would let
//     them through;
//   - COMMON_BASES: words that make up most weak passwords; a password that is one of these
//     with only digits and symbols around it ("Password2024!!", "123welcome456") is refused.
// Compared lower-case.

export const COMMON_PASSWORDS: ReadonlySet<string> = new Set([
  'password1234', 'password12345', 'password123456', 'password1234567', 'password123!', 'password2020', 'password2021',
  'password2022', 'password2023', 'password2024', 'password2025', 'qwerty123456', 'qwertyuiop123', 'qwerty1234567',
  '1q2w3e4r5t6y', '1q2w3e4r5t6y7u', 'q1w2e3r4t5y6', 'zaq12wsxcde3', '1qaz2wsx3edc', '1qaz2wsx3edc4rfv', 'qazwsx123456',
  'abc123456789', 'abcd12345678', 'abcdef123456', 'a1b2c3d4e5f6', '123456789abc', '123456789qwe', '123qweasdzxc',
  'qweasdzxc123', 'asdfghjkl123', 'asdf1234asdf', 'zxcvbnm12345', 'iloveyou1234', 'iloveyou12345', 'welcome12345',
  'welcome123456', 'letmein12345', 'letmein123456', 'admin1234567', 'admin123456789', 'administrator1', 'administrator123',
  'changeme1234', 'changeme12345', 'football1234', 'baseball1234', 'sunshine1234', 'princess1234', 'dragon123456',
  'monkey123456', 'superman1234', 'batman123456', 'trustno12345', 'starwars1234', 'michael12345', 'jennifer1234',
  'computer1234', 'internet1234', 'whatever1234', 'freedom12345', 'master123456', 'shadow123456', 'passw0rd1234',
  'p4ssw0rd1234', 'pa55word1234', 'passw0rd123!', 'india1234567', 'india@123456', 'bharat123456', 'mumbai123456',
  'delhi1234567', 'kolkata12345', 'chennai12345', 'bangalore123', 'hyderabad123', 'krishna12345', 'ganesh123456',
  'sairam123456', 'omsairam1234', 'jaihind12345', 'cricket12345', 'sachin123456', 'abcd@1234567', 'test12345678',
  'testtest1234', 'demo12345678', 'default12345', 'secret123456', 'summer202020', 'winter202020', 'spring2024!!',
  'tillpoint123', 'tillpoint1234', 'tillpoint2024', 'tillpoint2025', 'upi123456789', 'paytm1234567', 'phonepe12345',
  '1234567890qwerty', 'qwerty1234567890', 'zxcvbnm123456789', '1234qwerasdf', 'qwer1234asdf', 'asdfqwer1234',
  '11111111aaaa', 'aaaa11111111', '1234abcd1234', 'abc123abc123', 'pass12345678', 'user12345678', 'login1234567',
]);

export const COMMON_BASES: readonly string[] = [
  'password', 'passw0rd', 'p4ssw0rd', 'pa55word', 'pass', 'qwerty', 'qwertyuiop', 'asdfgh', 'asdfghjkl', 'zxcvbnm', 'abc', 'abcd',
  'abcdef', 'letmein', 'welcome', 'iloveyou', 'admin', 'administrator', 'root', 'user', 'login', 'changeme', 'secret',
  'default', 'test', 'demo', 'guest', 'master', 'monkey', 'dragon', 'football', 'baseball', 'cricket', 'sunshine',
  'princess', 'superman', 'batman', 'starwars', 'shadow', 'freedom', 'whatever', 'computer', 'internet', 'trustno',
  'summer', 'winter', 'spring', 'autumn', 'monday', 'friday', 'january', 'india', 'bharat', 'tillpoint', 'payments',
  'merchant', 'operator', 'support', 'security', 'company', 'office', 'qazwsx', 'azerty', 'hello', 'love', 'god',
];
