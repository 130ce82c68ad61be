// Package controllers holds the reconcilers of the xtrace operator.
package controllers
