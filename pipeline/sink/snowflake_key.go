package sink

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
)

// ParseSnowflakeKey parses an RSA private key for key-pair authentication from PEM:
// PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY"), or PKCS#8 encrypted with PBES2
// ("ENCRYPTED PRIVATE KEY": PBKDF2 with HMAC-SHA1/224/256/384/512, then AES-128/192/256-CBC
// or DES-EDE3-CBC, which covers `openssl pkcs8 -topk8` with its defaults and with
// `-v2 des3`, the command Snowflake's documentation gives). passphrase decrypts an
// encrypted key and is ignored for a plain one. Legacy PEM encryption ("Proc-Type:
// 4,ENCRYPTED") and scrypt are not supported.
func ParseSnowflakeKey(pemBytes []byte, passphrase string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if _, legacy := block.Headers["Proc-Type"]; legacy {
		return nil, errors.New("legacy PEM encryption (Proc-Type) is not supported: convert with `openssl pkcs8 -topk8 -v2 aes-256-cbc`")
	}
	der := block.Bytes
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("PKCS#1 key: %w", err)
		}
		return key, nil
	case "ENCRYPTED PRIVATE KEY":
		if passphrase == "" {
			return nil, errors.New("the key is encrypted: set the passphrase")
		}
		var err error
		if der, err = decryptPKCS8(der, passphrase); err != nil {
			return nil, err
		}
	case "PRIVATE KEY":
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY, ENCRYPTED PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("PKCS#8 key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%T key: Snowflake key-pair authentication needs RSA", key)
	}
	return rk, nil
}

// ASN.1 of an encrypted PKCS#8 key (RFC 5208, RFC 8018).
type (
	encryptedPKCS8 struct {
		Algo algorithmID
		Data []byte
	}
	algorithmID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	pbes2Params struct {
		KDF    algorithmID
		Scheme algorithmID
	}
	pbkdf2Params struct {
		Salt       []byte
		Iterations int
		KeyLength  int         `asn1:"optional"`
		PRF        algorithmID `asn1:"optional"`
	}
)

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// maxPBKDF2Iterations bounds the work a key file can demand (about 0.3 s at the bound):
// OpenSSL writes 2048 iterations by default, OWASP's 2023 advice is 600,000.
const maxPBKDF2Iterations = 1_000_000

// errBadPassphrase is what a wrong passphrase looks like (bad padding or garbage DER).
var errBadPassphrase = errors.New("cannot decrypt the key: wrong passphrase or corrupt key")

// decryptPKCS8 decrypts the DER of an ENCRYPTED PRIVATE KEY to a PKCS#8 PrivateKeyInfo.
func decryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	var enc encryptedPKCS8
	if rest, err := asn1.Unmarshal(der, &enc); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("encrypted PKCS#8: malformed (%v)", err)
	}
	if !enc.Algo.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted PKCS#8: scheme %s is not supported (want PBES2)", enc.Algo.Algorithm)
	}
	var p pbes2Params
	if _, err := asn1.Unmarshal(enc.Algo.Parameters.FullBytes, &p); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: PBES2 parameters: %w", err)
	}
	if !p.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted PKCS#8: key derivation %s is not supported (want PBKDF2)", p.KDF.Algorithm)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2 parameters: %w", err)
	}
	if kdf.Iterations < 1 || kdf.Iterations > maxPBKDF2Iterations {
		return nil, fmt.Errorf("encrypted PKCS#8: %d PBKDF2 iterations (want 1..%d)", kdf.Iterations, maxPBKDF2Iterations)
	}
	newBlock, keyLen, err := pbes2Cipher(p.Scheme.Algorithm)
	if err != nil {
		return nil, err
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, fmt.Errorf("encrypted PKCS#8: key length %d does not fit the cipher (%d)", kdf.KeyLength, keyLen)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(p.Scheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: cipher IV: %w", err)
	}
	key, err := pbkdf2Key(kdf, passphrase, keyLen)
	if err != nil {
		return nil, err
	}
	block, err := newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: %w", err)
	}
	bs := block.BlockSize()
	if len(iv) != bs {
		return nil, fmt.Errorf("encrypted PKCS#8: IV of %d bytes (want %d)", len(iv), bs)
	}
	if len(enc.Data) == 0 || len(enc.Data)%bs != 0 {
		return nil, errors.New("encrypted PKCS#8: data is not a whole number of cipher blocks")
	}
	plain := make([]byte, len(enc.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, enc.Data)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > bs || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errBadPassphrase
	}
	plain = plain[:len(plain)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(plain); err != nil {
		return nil, errBadPassphrase
	}
	return plain, nil
}

// pbes2Cipher returns the block cipher of a PBES2 encryption scheme and its key size.
func pbes2Cipher(oid asn1.ObjectIdentifier) (func([]byte) (cipher.Block, error), int, error) {
	switch {
	case oid.Equal(oidAES128CBC):
		return aes.NewCipher, 16, nil
	case oid.Equal(oidAES192CBC):
		return aes.NewCipher, 24, nil
	case oid.Equal(oidAES256CBC):
		return aes.NewCipher, 32, nil
	case oid.Equal(oidDESEDE3CBC):
		return des.NewTripleDESCipher, 24, nil
	}
	return nil, 0, fmt.Errorf("encrypted PKCS#8: cipher %s is not supported (want AES-CBC or DES-EDE3-CBC)", oid)
}

// pbkdf2Key derives the cipher key with the PRF the parameters name (default HMAC-SHA1).
func pbkdf2Key(p pbkdf2Params, passphrase string, keyLen int) ([]byte, error) {
	var h func() hash.Hash
	switch prf := p.PRF.Algorithm; {
	case len(prf) == 0 || prf.Equal(oidHMACSHA1):
		h = sha1.New
	case prf.Equal(oidHMACSHA224):
		h = sha256.New224
	case prf.Equal(oidHMACSHA256):
		h = sha256.New
	case prf.Equal(oidHMACSHA384):
		h = sha512.New384
	case prf.Equal(oidHMACSHA512):
		h = sha512.New
	default:
		return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2 PRF %s is not supported", prf)
	}
	key, err := pbkdf2.Key(h, passphrase, p.Salt, p.Iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2: %w", err)
	}
	return key, nil
}
